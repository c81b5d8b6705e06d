"""Training: logged episodes -> token tensors -> offline runs (BC, filtered BC, MC returns, ILQL;
``trainer.train``) and online runs on live episodes (PPO, online filtered BC, GRPO/RLOO;
``online.train_online``) that write new local checkpoints. It reads the same ``lmrl.episode.Episode``
records the harness writes."""
