"""Training: logged episodes -> token tensors -> offline (BC, filtered BC, MC returns, ILQL) and online
(PPO, online filtered BC) runs that write new local checkpoints. Arrives with the training issues; it
reads the same ``lmrl.episode.Episode`` records the harness writes."""
