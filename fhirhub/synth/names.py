"""Name pools for the synthetic city. Invented combinations of common given names; the pools are
weighted so that a few names are very common (the "common names" hard case of the patient index).

Groups (shares of households): Butonese (La/Wa, nobility La Ode/Wa Ode), other Muslim
Indonesian (Bugis, Muna, Javanese, ...), Christian (Toraja, Manado, Flores), Chinese-Indonesian.
"""

from __future__ import annotations

import random

GROUPS = (("buton", 0.58), ("muslim", 0.30), ("christian", 0.07), ("chinese", 0.05))
NOBLE_SHARE = 0.12  # of Butonese households carrying La Ode / Wa Ode (inherited from the father)

# Each pool is written most common first; pick() draws with Zipf-like weights 1/(i+1).
MUSLIM_MALE = (
    "Muhammad",
    "Ahmad",
    "Abdul",
    "Hasan",
    "Rahman",
    "Ali",
    "Usman",
    "Yusuf",
    "Ismail",
    "Ramli",
    "Hamid",
    "Ikhsan",
    "Rizky",
    "Arif",
    "Amir",
    "Syarif",
    "Halim",
    "Sahrul",
    "Jamaluddin",
    "Hasanuddin",
    "Nasrun",
    "Samsul",
    "Zainal",
    "Kadir",
    "Rusdin",
    "Sukri",
    "Baharuddin",
    "Jufri",
    "Iskandar",
    "Fadli",
    "Akbar",
    "Ilham",
    "Firman",
    "Aswan",
    "Hamzah",
    "Djafar",
    "Tjahjo",
    "Yunus",
    "Mansur",
    "Anwar",
    "Salim",
    "Darwis",
    "Rahmat",
    "Idrus",
    "Saleh",
    "Umar",
    "Chairul",
    "Syamsuddin",
    "Najib",
    "Faisal",
)
MUSLIM_FEMALE = (
    "Siti",
    "Nur",
    "Sitti",
    "Hasnah",
    "Aminah",
    "Fatimah",
    "Nurhayati",
    "Rahmawati",
    "Sri",
    "Wahyuni",
    "Hasna",
    "Nurjannah",
    "Jumiati",
    "Asni",
    "Ratna",
    "Yuliana",
    "Sumarni",
    "Halija",
    "Marni",
    "Salma",
    "Nurlia",
    "Rosmina",
    "Irma",
    "Dewi",
    "Fitri",
    "Sukmawati",
    "Hadijah",
    "Zainab",
    "Maryam",
    "Suriani",
    "Musdalifah",
    "Rahma",
    "Aisyah",
    "Nurul",
    "Indah",
    "Putri",
    "Djuhria",
    "Wa Ina",
    "Hasmia",
    "Nirmala",
)
MUSLIM_SECOND = (
    "",
    "",
    "",
    "",
    "Hidayat",
    "Rahman",
    "Saputra",
    "Ramadhan",
    "Kurniawan",
    "Hakim",
    "Aminah",
    "Fadilah",
    "Rahmawati",
    "Maulana",
    "Syahputra",
    "Hasanah",
    "Wulandari",
    "Jaya",
    "Pratama",
    "Safitri",
)
BUTON_MALE = (
    "Ode",
    "Ali",
    "Hasan",
    "Ndoke",
    "Ane",
    "Rusli",
    "Saidi",
    "Muhammad Ikhsan",
    "Munu",
    "Salimu",
    "Karimu",
    "Baa",
    "Sabaru",
    "Maa",
    "Jusu",
    "Ndungu",
    "Amaludin",
    "Bolu",
    "Ego",
    "Tima",
    "Kaimudin",
    "Rasidi",
    "Sudu",
    "Bahari",
    "Latifu",
)
BUTON_FEMALE = (
    "Ina",
    "Ode",
    "Nuru",
    "Saida",
    "Hania",
    "Sia",
    "Fatima",
    "Asa",
    "Rukia",
    "Mina",
    "Tiara",
    "Rahima",
    "Dia",
    "Siti Hajar",
    "Leni",
    "Ani",
    "Ima",
    "Jumia",
    "Sitina",
    "Waisa",
)
CHRISTIAN_MALE = (
    "Yohanes",
    "Petrus",
    "Stefanus",
    "Markus",
    "Yosef",
    "Daniel",
    "Andreas",
    "Paulus",
    "Fransiskus",
    "Matius",
    "Robert",
    "Yakobus",
    "Frengki",
    "Agustinus",
    "Julius",
)
CHRISTIAN_FEMALE = (
    "Maria",
    "Yuliana",
    "Margaretha",
    "Elisabeth",
    "Agustina",
    "Ribka",
    "Debora",
    "Kristina",
    "Veronika",
    "Natalia",
    "Melisa",
    "Priskila",
    "Yohana",
)
CHRISTIAN_FAMILY = (
    "Rante",
    "Pangemanan",
    "Lumban Tobing",
    "Tandi",
    "Manuhutu",
    "Lasut",
    "Parinding",
    "Sumampouw",
    "Da Costa",
    "Wenas",
    "Rorimpandey",
    "Sambo",
)
CHINESE_MALE = (
    "Hendra",
    "Budi",
    "Susanto",
    "Andi",
    "Rudy",
    "Hartono",
    "Sugianto",
    "Kevin",
    "Wilson",
    "Handoko",
    "Tjandra",
    "Jonathan",
)
CHINESE_FEMALE = (
    "Lily",
    "Lina",
    "Susi",
    "Meliana",
    "Jessica",
    "Yenny",
    "Lanny",
    "Fenny",
    "Cindy",
    "Vivian",
    "Tjhin Lie",
    "Lisa",
)
CHINESE_FAMILY = (
    "Wijaya",
    "Halim",
    "Gunawan",
    "Tanoto",
    "Salim",
    "Santoso",
    "Kusuma",
    "Tjandra",
    "Lim",
    "Setiawan",
    "Hartanto",
)
STREETS = (
    "Jl. Betoambari",
    "Jl. Sultan Hasanuddin",
    "Jl. Yos Sudarso",
    "Jl. Dayanu Ikhsanuddin",
    "Jl. Murhum",
    "Jl. Kartini",
    "Jl. Ahmad Yani",
    "Jl. Erlangga",
    "Jl. Gajah Mada",
    "Jl. Pahlawan",
    "Jl. Wa Ode Wau",
    "Jl. La Ode Manarfa",
    "Jl. Bataraguru",
    "Jl. Palagimata",
    "Jl. Lakarambau",
    "Jl. Sijawangkati",
    "Jl. Poros Lakologou",
    "Jl. Anoa",
    "Jl. Mawar",
    "Jl. Melati",
    "Lorong Kenari",
    "Lorong Pasar Wameo",
    "Jl. Tanjung",
    "Jl. Karya Baru",
)


def _weights(n: int) -> list[float]:
    acc = 0.0
    out = []
    for i in range(n):
        acc += 1.0 / (i + 1) ** 0.9
        out.append(acc)
    return out


_CUM: dict[int, list[float]] = {}


def pick(rng: random.Random, pool: tuple[str, ...]) -> str:
    cum = _CUM.get(len(pool))
    if cum is None:
        cum = _CUM[len(pool)] = _weights(len(pool))
    return rng.choices(pool, cum_weights=cum, k=1)[0]


def choose_group(rng: random.Random) -> str:
    x = rng.random()
    for g, share in GROUPS:
        if x < share:
            return g
        x -= share
    return GROUPS[-1][0]


def make_name(
    rng: random.Random, group: str, sex: str, noble: bool, family: str, older: bool
) -> tuple[str, str, str]:
    """(prefix, given, family) for a new person. `family` is the household's family name
    (Christian and Chinese households), `older` makes single names more likely."""
    male = sex == "male"
    if group == "buton":
        prefix = ("La Ode" if male else "Wa Ode") if noble else ("La" if male else "Wa")
        given = pick(rng, BUTON_MALE if male else BUTON_FEMALE)
        if prefix.endswith("Ode") and given == "Ode":
            given = pick(rng, MUSLIM_MALE if male else MUSLIM_FEMALE)
        if not older and rng.random() < 0.45:
            # younger Butonese often carry a general Muslim given name after the prefix
            given = pick(rng, MUSLIM_MALE if male else MUSLIM_FEMALE)
            if rng.random() < 0.4:
                second = pick(rng, MUSLIM_SECOND)
                if second:
                    given = f"{given} {second}"
        if given == "Ode":
            given = pick(rng, MUSLIM_MALE if male else MUSLIM_FEMALE)
        return prefix, given, ""
    if group == "muslim":
        given = pick(rng, MUSLIM_MALE if male else MUSLIM_FEMALE)
        if given == "Wa Ina":
            given = "Ina"
        single = 0.55 if older else 0.25
        if rng.random() >= single:
            second = pick(rng, MUSLIM_SECOND)
            if second and second != given:
                given = f"{given} {second}"
        prefix = "Andi" if noble and rng.random() < 0.5 else ""
        return prefix, given, ""
    if group == "christian":
        return "", pick(rng, CHRISTIAN_MALE if male else CHRISTIAN_FEMALE), family
    return "", pick(rng, CHINESE_MALE if male else CHINESE_FEMALE), family


def family_name(rng: random.Random, group: str) -> str:
    if group == "christian":
        return pick(rng, CHRISTIAN_FAMILY)
    if group == "chinese":
        return pick(rng, CHINESE_FAMILY)
    return ""
