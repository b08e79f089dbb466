"""Fellegi–Sunter scoring of record pairs, with m and u estimated from the data (no labels).

* ``u`` (the chance of each level between two different people) comes from random pairs of
  records, almost all of which are different people (:func:`estimate_u`).
* ``m`` (the chance of each level between two records of one person) and the prior ``lambda``
  (the share of candidate pairs that match) come from Expectation-Maximisation over the blocked
  candidate pairs, ``u`` held fixed (:func:`estimate_m`), as Splink does.
* Name agreement is adjusted by term frequency: agreeing on ``SITI`` says less than agreeing on
  a rare name. The Buton prefix (La, Wa, La Ode, Wa Ode) is not a name token, so it carries no
  weight at all.
* A pair's match weight is ``log2(lambda / (1 - lambda))`` plus each field's ``log2(m / u)``;
  its probability is ``1 / (1 + 2**-weight)``. Two thresholds on the probability split pairs
  into link, review and no link.
* Rules forbid links a person never makes (:func:`rules`), whatever the weight, and cap some
  pairs at review.

A :class:`Model` (m, u, lambda, term frequencies, thresholds) round-trips through JSON so that
it can be stored and re-estimated.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from fhirhub.mpi.compare import FIELDS, LEVELS, MISSING, Comparison, compare, compare_nik, nik_guard
from fhirhub.mpi.dates import CLOSE
from fhirhub.mpi.features import Features, blocking_keys

LINK, REVIEW, NO_LINK = "link", "review", "no-link"
_TF_BOUNDS = (-8.0, 4.0)  # bits a name's term frequency may move its weight, down and up
HOUSEHOLDS = 0.1  # Model.shared_addresses from which an address is a household's


@dataclass
class Model:
    """Everything scoring needs; plain data, serialisable with :meth:`to_json`."""

    m: dict[str, list[float]]
    u: dict[str, list[float]]
    prior: float  # lambda: the share of candidate pairs that are one person
    token_tf: dict[str, float] = field(default_factory=dict)  # spelling key -> share of records
    tf_floor: float = 1e-4  # the frequency of a token never seen
    link_threshold: float = 0.99
    review_threshold: float = 0.5
    # Pairs at one address that are plainly two people (:func:`shared_addresses`); 1.0, the
    # cautious default, reads every shared address as a household's.
    shared_addresses: float = 1.0
    # How many records ``prior`` was estimated over (0: unknown). Matches grow with the records
    # and pairs with their square, so lambda falls as 1/n: :meth:`at_size` rescales it.
    records: int = 0

    def at_size(self, n: int) -> Model:
        """The model for an index of ``n`` records: lambda rescaled from the size it was
        estimated at (a model from a small city would be far too sure at a million)."""
        if self.records < 2 or n <= self.records:
            return self
        return replace(self, prior=self.prior * (self.records - 1) / (n - 1), records=n)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Model:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Decision:
    band: str  # LINK, REVIEW or NO_LINK
    probability: float
    weight: float
    breakdown: dict[str, float]  # field -> partial weight (bits)
    reasons: tuple[str, ...] = ()  # rules that forbade the link or capped it at review


# --- estimation ------------------------------------------------------------------------------


def token_frequencies(records: Sequence[Features]) -> tuple[dict[str, float], float]:
    """Share of records whose name holds each spelling key, and the floor for unseen keys."""
    counts: Counter[str] = Counter()
    for r in records:
        if r.name is not None and not r.name.newborn:
            counts.update(set(r.name.key))
    n = max(len(records), 1)
    return {t: c / n for t, c in counts.items()}, 1.0 / n


def estimate_u(
    records: Sequence[Features], pairs: int = 50_000, seed: int = 0
) -> dict[str, list[float]]:
    """u per field and level from random pairs (with one pseudo-count per level)."""
    rng = random.Random(seed)
    counts = {f: [1.0] * len(LEVELS[f]) for f in FIELDS}
    n = len(records)
    if n >= 2:
        for _ in range(pairs):
            i, j = rng.sample(range(n), 2)
            _count(counts, compare(records[i], records[j]).levels, 1.0)
    return _normalise(counts)


def estimate_m(
    comparisons: Sequence[Comparison],
    u: dict[str, list[float]],
    prior: float = 0.3,
    iterations: int = 100,
    tolerance: float = 1e-6,
    ignore: Iterable[str] = (),
    m: dict[str, list[float]] | None = None,
    fit_m: bool = True,
) -> tuple[dict[str, list[float]], float]:
    """m and lambda by EM over candidate pairs, u held fixed; returns (m, lambda).

    ``ignore``: fields left out (as if missing), the fields the pairs were blocked on, whose
    agreement says nothing there. ``fit_m=False`` keeps ``m`` and fits lambda only.
    """
    m = m or {f: _initial_m(len(LEVELS[f])) for f in FIELDS}
    masked = [FIELDS.index(f) for f in ignore]
    vectors = Counter(
        tuple(MISSING if k in masked else lv for k, lv in enumerate(c.levels)) for c in comparisons
    )  # identical vectors weigh together
    total = sum(vectors.values())
    if not total:
        return m, prior
    for _ in range(iterations):
        counts = {f: [1e-3] * len(LEVELS[f]) for f in FIELDS}
        matched = 0.0
        for levels, k in vectors.items():
            log_m = math.log(prior) + _log_likelihood(m, levels)
            log_u = math.log(1 - prior) + _log_likelihood(u, levels)
            p = 1.0 / (1.0 + math.exp(max(min(log_u - log_m, 700.0), -700.0)))
            matched += p * k
            _count(counts, levels, p * k)
        new_m = _floor(_normalise(counts)) if fit_m else m
        new_prior = min(max(matched / total, 1e-6), 1 - 1e-6)
        change = max(abs(a - b) for f in FIELDS for a, b in zip(m[f], new_m[f], strict=True))
        m, prior = new_m, new_prior
        if change < tolerance:
            break
    return m, prior


def candidate_pairs(
    records: Sequence[Features],
    max_block: int = 200,
    kinds: Iterable[str] | None = None,
    keys: Sequence[Iterable[str]] | None = None,
) -> set[tuple[int, int]]:
    """Index pairs sharing a blocking key (of the given ``kinds``, e.g. ``"nik"``, default
    all). A block over ``max_block`` records is skipped (the write path will send such a
    record to review rather than score a crowd). ``keys``: each record's blocking keys, when
    the caller has them (training asks six times)."""
    wanted = set(kinds) if kinds is not None else None
    blocks: dict[str, list[int]] = {}
    for i, record_keys in enumerate(keys if keys is not None else map(blocking_keys, records)):
        for key in record_keys:
            if wanted is None or key.split(":", 1)[0] in wanted:
                blocks.setdefault(key, []).append(i)
    pairs: set[tuple[int, int]] = set()
    for members in blocks.values():
        if 1 < len(members) <= max_block:
            pairs.update((a, b) for k, a in enumerate(members) for b in members[k + 1 :])
    return pairs


EM_PAIRS = 250_000  # candidate pairs EM reads at most per session: a random sample past it


def _sample(pairs: set[tuple[int, int]], rng: random.Random) -> list[tuple[int, int]]:
    """The pairs, or a random sample of EM_PAIRS of them: EM's estimates settle long before
    (a city of 200,000 records has millions of candidate pairs, and training took minutes)."""
    ordered = sorted(pairs)
    return ordered if len(ordered) <= EM_PAIRS else rng.sample(ordered, EM_PAIRS)


# EM sessions as in Splink: pairs blocked on some fields train the m of the others only.
SESSIONS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("nik", "bpjs", "ihs", "id"), ("nik", "bpjs", "ihs", "other_id")),
    (("name-dob",), ("name", "birth_date")),
    (("dob-kel",), ("birth_date", "kelurahan")),
    (("dob-pc",), ("birth_date", "postcode")),
    (("name-pc",), ("name", "postcode")),
)


def train(
    records: Sequence[Features],
    seed: int = 0,
    keys: Sequence[Iterable[str]] | None = None,
    **thresholds: float,
) -> Model:
    """A model estimated from these records alone: u from random pairs, m by EM in sessions
    (each blocked on some fields, training the others), lambda over all candidate pairs.
    ``keys``: each record's blocking keys, when the caller has them."""
    u = estimate_u(records, seed=seed)
    rng = random.Random(seed)
    if keys is None:
        keys = [blocking_keys(r) for r in records]
    sums = {f: [0.0] * len(LEVELS[f]) for f in FIELDS}
    seen = dict.fromkeys(FIELDS, 0)
    for kinds, blocked in SESSIONS:
        pairs = _sample(candidate_pairs(records, kinds=kinds, keys=keys), rng)
        if not pairs:
            continue
        session_m, _ = estimate_m(
            [compare(records[i], records[j]) for i, j in pairs], u, ignore=blocked
        )
        for f in FIELDS:
            if f not in blocked:
                sums[f] = [a + b for a, b in zip(sums[f], session_m[f], strict=True)]
                seen[f] += 1
    m = {
        f: [x / seen[f] for x in sums[f]] if seen[f] else _initial_m(len(LEVELS[f])) for f in FIELDS
    }
    candidates = candidate_pairs(records, keys=keys)
    comparisons = [compare(records[i], records[j]) for i, j in _sample(candidates, rng)]
    _, among_candidates = estimate_m(comparisons, u, m=m, fit_m=False)
    # lambda of two records drawn at random, not of two candidates: the fields a pair was
    # blocked on are scored too, so a prior among candidates would count their agreement twice
    # (and reach 1 where candidates are nearly all matches).
    n = len(records)
    everyone = max(n * (n - 1) / 2, 1.0)
    prior = min(max(among_candidates * len(candidates) / everyone, 1e-9), 0.5)
    tf, floor = token_frequencies(records)
    return Model(
        m=m,
        u=u,
        prior=prior,
        token_tf=tf,
        tf_floor=floor,
        shared_addresses=shared_addresses(records),
        records=n,
        **thresholds,
    )


def shared_addresses(records: Sequence[Features], per_address: int = 50) -> float:
    """The share of pairs of records at one address (the same street line in the same
    kelurahan, postcode or town) that are plainly two people: no name token in common and
    birth dates far apart. High where households share an address (Baubau: about 0.7), near
    zero where an address is a person's own (the Febrl files: under 0.01); the rules read an
    address as a household's, not a person's, above :data:`HOUSEHOLDS` (no labels needed)."""
    groups: dict[tuple[str, str | None], list[int]] = {}
    for i, r in enumerate(records):
        if r.street:
            groups.setdefault((r.street, r.kelurahan or r.postcode or r.locality), []).append(i)
    pairs = apart = 0
    for members in groups.values():
        for k, (i, j) in enumerate(itertools.combinations(members, 2)):
            if k == per_address:
                break
            c = compare(records[i], records[j])
            pairs += 1
            apart += c.level("name") >= 4 and c.level("birth_date") == 4
    return apart / pairs if pairs else 1.0


# --- scoring ---------------------------------------------------------------------------------


def partial_weights(model: Model, c: Comparison) -> dict[str, float]:
    """Each field's log2(m/u) at its level (0 when missing), the name adjusted by TF."""
    out = {}
    for f, level in zip(FIELDS, c.levels, strict=True):
        if level == MISSING:
            out[f] = 0.0
            continue
        out[f] = math.log2(model.m[f][level] / model.u[f][level])
        if f == "name" and level in (0, 1, 3) and c.shared_tokens:
            tf = math.prod(model.token_tf.get(t, model.tf_floor) for t in c.shared_tokens)
            adjust = math.log2(model.u[f][level] / max(tf, model.tf_floor**2))
            out[f] += min(max(adjust, _TF_BOUNDS[0]), _TF_BOUNDS[1])
    return out


def rules(
    a: Features, b: Features, c: Comparison, households: bool = True
) -> tuple[list[str], list[str]]:
    """(forbidden, review): the reasons a pair may never be linked, or only by a person.

    ``households``: whether an address is shared by a household (``Model.shared_addresses``
    at least :data:`HOUSEHOLDS`, as in Baubau) or is a person's own. Where it is a person's
    own, an agreeing address is the person's evidence, not the household's.
    """
    forbidden, review = [], []
    placeholder = (a.newborn_placeholder and a.nik_ibu) or (b.newborn_placeholder and b.nik_ibu)
    if c.level("nik") == 2 and not placeholder:
        forbidden.append("different-nik")
    if a.nik_ibu is not None and a.nik_ibu == b.nik_ibu and c.level("birth_date") == 4:
        forbidden.append("siblings")  # one mother's children, born on dates far apart
    hints = (a.name.sex_hint if a.name else None, b.name.sex_hint if b.name else None)
    if None not in hints and hints[0] != hints[1]:
        forbidden.append("sex-by-name")  # La and Wa, bin and binti: a man and a woman
    if (
        a.multiple_birth is not None
        and b.multiple_birth is not None
        and a.multiple_birth != b.multiple_birth
    ):
        forbidden.append("multiple-birth-order")
    same_address = c.level("kelurahan") == 0 or (
        0 <= c.level("street") <= 1 and 0 in (c.level("postcode"), c.level("locality"))
    )
    household = (
        (a.nik_ibu is not None and a.nik_ibu == b.nik_ibu)
        or c.level("phone") == 0
        or (same_address and households)
    )
    # An identifier held in common (the same NIK, BPJS or IHS number, or the same value of
    # another identifier system) is the record's own claim of who it is: twins have two.
    shared_id = 0 in (c.level("nik"), c.level("bpjs"), c.level("ihs"), c.level("other_id"))
    near_id = _near_identifier(a, b, c)
    if (
        c.level("birth_date") == 0
        and household
        and c.level("name") >= 3
        and not (shared_id or near_id)
    ):
        forbidden.append("twins")
    if (
        a.birth_date
        and b.birth_date
        and abs(a.birth_date.year - b.birth_date.year) >= 12
        and not (shared_id or near_id)
        and not (same_address and not households)
    ):
        # A parent and a child of the same name; with an identifier in common, or at one
        # address where addresses are a person's own, a birth date typed wrong.
        forbidden.append("generation-apart")
    # The same NIK, but a record disagrees with it: a date mistyped (foreign NIKs are not
    # compared at all) is no matter; the sex wrong with names that differ is a twin's NIK.
    sex_conflict = "gender" in a.nik_conflicts or "gender" in b.nik_conflicts
    if c.level("nik") == 0 and sex_conflict and not 0 <= c.level("name") <= 2:
        review.append("nik-conflicts-record")
    # A household shares phone, address and often a family name: without an identifier in
    # common, a link needs the person's own name and birth date to agree (§11.6 of the notes).
    same_mother = (
        a.nik_ibu is not None
        and a.nik_ibu == b.nik_ibu
        and a.multiple_birth is not None
        and a.multiple_birth == b.multiple_birth
        and 0 <= c.level("birth_date") <= CLOSE  # siblings share the mother and the order
    )
    # A "By. Ny." record and a named one of the same birth order, born the same day in the
    # same household: one child (twins differ in order, which is forbidden above).
    newborn = (
        a.newborn_placeholder != b.newborn_placeholder
        and a.multiple_birth is not None
        and a.multiple_birth == b.multiple_birth
        and c.level("birth_date") == 0
        and household
    )
    identifier = same_mother or newborn or shared_id
    # What is the person's own (not the household's): the name at least close, the birth date
    # at least close, an identifier one typo away, and where addresses are not shared by
    # households, the address. Two are needed.
    # (the name of a "By. Ny." placeholder is the mother's: not the child's evidence)
    placeholders = a.newborn_placeholder or b.newborn_placeholder
    # Where addresses are a person's own, no household shows in the data, and a name sharing
    # a token (a given name replaced, a surname changed by marriage) is the person's too.
    own_name = 0 <= c.level("name") <= (2 if households else 3)
    personal = (
        (own_name and not placeholders)
        + (0 <= c.level("birth_date") <= CLOSE)
        + near_id
        + (same_address and not households)
    )
    if not identifier and personal < 2:
        review.append("no-identifier-weak-identity")
    return forbidden, review


def _different_niks(a: Features, b: Features) -> bool:
    """The ``different-nik`` rule of :func:`rules`, without the rest of the comparison."""
    return compare_nik(nik_guard(a), nik_guard(b)) == 2


def _near_identifier(a: Features, b: Features, c: Comparison) -> bool:
    """An identifier one typo away that no relative would hold.

    Any other system's value one typo away counts. A NIK counts only when the typo is in its
    region code: a NIK one digit off in the birth date is a parent's or a sibling's, and one off
    in the sequence number is a twin's (Dukcapil numbers the children born on one day in one
    district one after another).
    """
    if c.level("other_id") == 1:
        return True
    return (
        c.level("nik") == 1
        and a.nik is not None
        and b.nik is not None
        and a.nik.value[6:] == b.nik.value[6:]
    )


def _shares_identifier(a: Features, b: Features, c: Comparison) -> bool:
    """Both records carry the same NIK (also one read as a relative's), BPJS or IHS number."""
    same_nik = a.nik is not None and b.nik is not None and a.nik.value == b.nik.value
    return same_nik or 0 in (c.level("bpjs"), c.level("ihs"))


def decide(model: Model, a: Features, b: Features) -> Decision:
    """Score a pair and place it in a band (see the module's docstring)."""
    if _different_niks(a, b):
        # Most candidates sharing a name, street or birth date are other citizens with NIKs of
        # their own: the rule that forbids them needs no comparison of the rest, and nothing
        # reads the score of a forbidden pair.
        return Decision(NO_LINK, 0.0, -math.inf, {}, ("different-nik",))
    c = compare(a, b)
    parts = partial_weights(model, c)
    weight = math.log2(model.prior / (1 - model.prior)) + sum(parts.values())
    probability = 1.0 / (1.0 + 2.0 ** max(min(-weight, 1000.0), -1000.0))
    forbidden, review = rules(a, b, c, model.shared_addresses >= HOUSEHOLDS)
    if forbidden:
        band = NO_LINK
    elif probability >= model.link_threshold:
        band = REVIEW if review else LINK
    elif probability >= model.review_threshold or (review and _shares_identifier(a, b, c)):
        # a rule's doubt sends a pair to a person only if it is a plausible match at all: by
        # its score, or by a national identifier both records carry (a NIK that contradicts a
        # birth date); two strangers who merely share a street are no one's work
        band = REVIEW
    else:
        band = NO_LINK
    return Decision(band, probability, weight, parts, tuple(forbidden + review))


# --- helpers ---------------------------------------------------------------------------------


def _initial_m(k: int) -> list[float]:
    # Most matches agree at the best level; the rest spread over the others.
    return [0.9] + [0.1 / (k - 1)] * (k - 1)


def _log_likelihood(p: dict[str, list[float]], levels: Iterable[int]) -> float:
    return sum(math.log(p[f][lv]) for f, lv in zip(FIELDS, levels, strict=True) if lv != MISSING)


def _count(counts: dict[str, list[float]], levels: Iterable[int], w: float) -> None:
    for f, lv in zip(FIELDS, levels, strict=True):
        if lv != MISSING:
            counts[f][lv] += w


def _floor(p: dict[str, list[float]], least: float = 1e-3) -> dict[str, list[float]]:
    # No level is impossible among matches: an m of ~0 would veto a link on one field alone.
    return _normalise({f: [max(x, least) for x in xs] for f, xs in p.items()})


def _normalise(counts: dict[str, list[float]]) -> dict[str, list[float]]:
    return {f: [x / sum(xs) for x in xs] for f, xs in counts.items()}
