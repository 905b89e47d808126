import gc
import math

import pytest
import torch

from model.checkpoint import save_checkpoint
from model.encoder import EncoderConfig, NameEncoder, NameEncodingError
from model.networks import build_network
from model.predictor import (
    ABSTAIN_REASONS,
    DEFAULT_CHECKPOINT_PATH,
    DeviceUnavailableError,
    LabelProbability,
    NamePrediction,
    Predictor,
    RankQuery,
    resolve_device,
)
from model.priors import PriorError
from tests.conftest import tiny_language_model
from tests.network_fixtures import network_config

LABELS = ("Alpha", "Beta", "Gamma", "Delta")


@pytest.fixture
def predictor(tmp_path):
    torch.manual_seed(1)
    network = build_network(network_config("lstm", NameEncoder().vocab_size, len(LABELS), hidden_size=8))
    path = tmp_path / "tiny.safetensors"
    language_model = tiny_language_model(EncoderConfig(), val_quantile=0.0)  # fixture-like names only are names
    save_checkpoint(path, network, EncoderConfig(), LABELS, language_model, (0.4, 0.3, 0.2, 0.1))
    return Predictor.from_path(path, device="cpu")


@pytest.fixture(scope="module")
def shipped():
    return Predictor.from_path(device="cpu")


def test_predictor_returns_sorted_top_k_in_input_order(predictor):
    names = ["Kovaski", "Li", "Bozov", "Mikez"]
    results = predictor.predict(names, top_k=3)
    assert [result.name for result in results] == names
    for result in results:
        probabilities = [p.probability for p in result.predictions]
        assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert {p.label for p in result.predictions} <= set(LABELS)
        assert all(math.isclose(math.exp(p.log_probability), p.probability) for p in result.predictions)


def test_predictor_probabilities_sum_to_one_over_all_labels(predictor):
    for result in predictor.predict(["Kovski", "Li"], top_k=len(LABELS)):
        assert math.isclose(sum(p.probability for p in result.predictions), 1.0, abs_tol=1e-5)


def test_predictor_batching_matches_one_at_a_time(predictor):
    names = [f"Bo{'z' * (i % 9)}ov" for i in range(50)] + ["Li", "Abe", "Mikez Kovski", "Kovski, Mikez"]
    predictor.scorer.max_batch_size = 7
    together, _ = predictor.log_probabilities(names)
    alone = torch.cat([predictor.log_probabilities([name])[0] for name in names])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


def test_predictor_answers_are_the_ranked_lists_field_for_field(shipped):
    """`predict` builds its tuples from flat streams over the ranked lists; built here one by one from
    the same lists, they must be equal: plain names, full names (with their tokens), abstentions of
    every kind and a low-confidence answer that keeps its labels."""
    names = ["Tanaka", "Nguyen Van Minh", "qwerty", "123", "Kowalska", "Smith, John", "Ng", "Li", "O'Neill"] * 3
    for top_k, min_probability in ((3, 0.0), (1, 0.9), (18, 0.0)):
        ranked = shipped.rank(names, top_k=top_k, min_probability=min_probability)
        expected = [
            NamePrediction(
                name,
                tuple(
                    LabelProbability(shipped.labels[i], p, lp) for i, p, lp in zip(ids, probs, log_probs, strict=True)
                ),
                reason is not None,
                reason,
                read_as,
                script,
                tuple(shipped._token_prediction(token) for token in tokens),
            )
            for name, ids, probs, log_probs, reason, read_as, script, tokens in zip(names, *ranked[:-1], strict=True)
        ]
        answers = shipped.predict(names, top_k=top_k, min_probability=min_probability)
        assert answers == expected
        assert {answer.reason for answer in answers} >= {None, "not-a-name", "no-letters"}
        assert any(answer.tokens for answer in answers)
        assert all(
            len(answer.predictions) == (top_k if answer.reason in (None, "low-confidence") else 0) for answer in answers
        )
    assert "low-confidence" in {answer.reason for answer in shipped.predict(names, top_k=1, min_probability=0.9)}


def test_predictor_rejects_bad_arguments_but_never_a_bad_name(predictor):
    for top_k in (0, len(LABELS) + 1, True, 2.0):
        with pytest.raises(ValueError, match="top_k"):
            predictor.predict(["Hinton"], top_k=top_k)
    with pytest.raises(PriorError, match="Omega"):
        predictor.predict(["Hinton"], prior={"Omega": 1.0})
    with pytest.raises(NameEncodingError, match="must be a string"):
        predictor.predict(["Hinton", None])
    assert predictor.predict([]) == []


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("1234", "no-letters"),
        ("", "no-letters"),
        ("  -- ", "no-letters"),
        ("नरेंद्र", "unsupported-script"),
        ("שמיר", "unsupported-script"),
        ("Yılmaz", "unsupported-letters"),
        ("Sørensen", "unsupported-letters"),
        ("N/A", "not-a-name"),
        ("null", "not-a-name"),
        ("NULL", "not-a-name"),
        ("qxzvkwq", "not-a-name"),
        ("R2D2", "not-a-name"),
        ("Kovski2", "not-a-name"),
        ("R2D2 1138", "not-a-name"),  # the more telling of its parts' reasons
        ("Kovski" * 11, "too-long"),
    ],
)
def test_predictor_abstains_in_place_with_the_reason(predictor, name, reason):
    assert reason in ABSTAIN_REASONS
    first, answer, last = predictor.predict(["Kovski", name, "Bozov"], top_k=2)
    assert (first.name, answer.name, last.name) == ("Kovski", name, "Bozov")
    assert answer.abstained and answer.reason == reason and answer.predictions == ()
    assert not first.abstained and len(first.predictions) == 2 and not last.abstained


def test_a_part_with_digits_is_left_out_and_the_name_answered_from_the_rest(predictor):
    digits, alone = predictor.predict(["Kovski2 Bozov", "Bozov"], top_k=3)
    assert not digits.abstained and digits.predictions == alone.predictions
    assert [(token.text, token.reason) for token in digits.tokens] == [("Kovski2", "not-a-name"), ("Bozov", None)]


@pytest.mark.parametrize(
    "name",
    [
        *(
            "ア\ufe00",
            "辻\U000e0101",
            "-亿",
            "'-仃",
            "さとう\ufe0f",
            "Mr.",
            "J. R.",
            "123 ह",
            "ह 123",
            "\u0301",
            "\ufe0f",
        ),
        *("王\U00020000\U00020000", "\U00020000小明", "々木田", "王々明"),  # three Han characters, a part unread
    ],
)
def test_predictor_never_raises_on_odd_unicode(predictor, shipped, name):
    for model in (predictor, shipped):
        answer = model.predict([name, "Kovski"])[0]
        assert answer.abstained == bool(answer.reason) and (answer.predictions == ()) == (
            answer.reason not in (None, "low-confidence")
        )


def test_predictor_abstains_on_titles_alone_and_by_the_most_telling_reason(predictor):
    assert [answer.reason for answer in predictor.predict(["Mr.", "J.", "123 ह", "ह 123"])] == [
        "not-a-name",
        "not-a-name",
        "unsupported-script",
        "unsupported-script",
    ]


def test_predictor_lists_the_tokens_of_a_name_that_is_not_a_name_as_such(predictor):
    answer = predictor.predict(["John Doe"])[0]  # a placeholder
    assert answer.reason == "not-a-name" and [t.reason for t in answer.tokens] == ["not-a-name", "not-a-name"]


def test_predictor_prior_weights_may_be_huge(predictor):
    answer = predictor.predict(["Bozov"], top_k=2, prior={"Alpha": 1e308, "Beta": 1e308})[0]
    assert {p.label for p in answer.predictions} == {"Alpha", "Beta"}


def test_predictor_abstains_below_min_probability_but_keeps_the_labels(predictor):
    answer = predictor.predict(["Kovski"], top_k=2)[0]
    floor = answer.predictions[0].probability + 1e-6
    low = predictor.predict(["Kovski"], top_k=2, min_probability=floor)[0]
    assert low.abstained and low.reason == "low-confidence" and low.predictions == answer.predictions
    assert not predictor.predict(["Kovski"], top_k=2, min_probability=floor - 2e-6)[0].abstained


def test_predictor_answers_every_case_the_same(predictor):
    answers = predictor.predict(["Kovski", "KOVSKI", "kovski", "kOvSkI"], top_k=len(LABELS))
    assert len({answer.predictions for answer in answers}) == 1
    assert {answer.read_as for answer in answers} == {"kovski"}


def test_predictor_prior_is_applied_by_bayes_rule(predictor):
    stored = dict(zip(LABELS, (0.4, 0.3, 0.2, 0.1), strict=True))
    dataset = {p.label: p.probability for p in predictor.predict(["Bozov"], top_k=4)[0].predictions}
    uniform = {p.label: p.probability for p in predictor.predict(["Bozov"], top_k=4, prior="uniform")[0].predictions}
    expected = {label: dataset[label] / stored[label] for label in LABELS}
    total = sum(expected.values())
    assert uniform == pytest.approx({label: value / total for label, value in expected.items()}, abs=1e-5)
    same = predictor.predict(["Bozov"], top_k=4, prior=stored)[0].predictions
    assert {p.label: p.probability for p in same} == pytest.approx(dataset, abs=1e-5)


def test_predictor_prior_map_rules_out_labels_it_leaves_out(predictor):
    answer = predictor.predict(["Bozov", "Kovski"], top_k=4, prior={"Beta": 1, "Gamma": 3, "Delta": 0})
    for result in answer:
        assert {p.label for p in result.predictions} == {"Beta", "Gamma"}
        assert sum(p.probability for p in result.predictions) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    "prior", ["population", {"Alpha": -1}, {"Alpha": 0, "Beta": 0}, {"Alpha": float("nan")}, ["Alpha"]]
)
def test_predictor_refuses_a_prior_it_cannot_apply(predictor, prior):
    with pytest.raises(PriorError):
        predictor.predict(["Bozov"], prior=prior)


def test_predictor_rank_requests_answers_requests_that_ask_alike_as_each_alone(predictor):
    names = [["Bozov"], ["Kovski", "Mikez"], ["Li"]]
    queries = [RankQuery(2, {"Alpha": 1, "Beta": 2}), RankQuery(2, {"Beta": 2, "Alpha": 1}), RankQuery(3)]
    together = predictor.rank_requests(list(zip(names, queries, strict=True)))
    for request_names, query, answer in zip(names, queries, together, strict=True):
        alone = predictor.rank(request_names, query.top_k, query.prior, query.min_probability)
        assert answer.label_ids == alone.label_ids and answer.reasons == alone.reasons
        assert [row for row in answer.probabilities] == [pytest.approx(row, abs=1e-6) for row in alone.probabilities]


def test_predictor_rank_requests_ranks_each_request_under_its_own_query(predictor):
    requests = [
        (["Bozov", "Kovski"], RankQuery(1)),
        (["Bozov"], RankQuery(4, "uniform")),
        (["Bozov"], RankQuery(2, "dataset", 1.0)),
    ]
    first, second, third = predictor.rank_requests(requests)
    alone = predictor.rank(["Bozov"], top_k=4, prior="uniform")
    assert len(first.label_ids) == 2 and len(first.label_ids[0]) == 1
    assert second.label_ids == alone.label_ids and second.probabilities[0] == pytest.approx(
        alone.probabilities[0], abs=1e-6
    )
    assert third.reasons == ["low-confidence"] and len(third.label_ids[0]) == 2


def test_resolve_device_never_falls_back_silently(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(DeviceUnavailableError, match="cuda"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("tpu")


def test_shipped_default_checkpoint_loads_and_is_small(shipped):
    assert DEFAULT_CHECKPOINT_PATH.stat().st_size < 5 * 1024 * 1024
    assert len(shipped.labels) == 18
    assert shipped.checkpoint.info["data_fingerprint"].startswith("sha256:")
    assert shipped.predict(["Nguyễn"], top_k=1)[0].predictions[0].label == "Vietnamese"


def test_predict_cli_prints_top_3_per_name_and_abstentions(capsys):
    from model.predict import main

    assert main(["Hinton", "Nguyễn", "123", "Kim Min-jun", "--device", "cpu"]) == 0
    output = capsys.readouterr().out
    assert "> Hinton" in output and "> Nguyễn  (read as 'nguyen', Latin)" in output
    assert "abstained: no-letters" in output and "part 'Min-jun'" in output
    assert output.count("%") == 3 * 3 + 2  # three answered names, and the two parts' best labels


def test_predict_cli_reads_names_from_standard_input(capsys, monkeypatch):
    import io

    from model.predict import main

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO("\ufeffHinton\r\n\nTanaka\n".encode())))
    assert main(["-", "--device", "cpu", "--top-k", "1"]) == 0
    output = capsys.readouterr().out
    assert "> Hinton  (" in output and "> Tanaka" in output and "abstained: no-letters" in output


def test_predict_cli_refuses_input_that_is_not_utf8_saying_where(capsys, monkeypatch):
    """M\\xfcller was read "mller" (German 0.43, exit 0) through the surrogate the locale made of it, or
    in a strict locale ended in a traceback; standard output closed lost every answer with exit 0."""
    import io

    from model.predict import main

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"Smith\nM\xfcller\n")))
    assert main(["-", "--device", "cpu"]) == 2
    assert "standard input: line 2 is not valid UTF-8" in capsys.readouterr().err
    assert main(["Smith", "M\udcfcller", "--device", "cpu"]) == 2  # how Python hands over such an argument
    assert "argument 2 is not valid UTF-8: b'M\\xfcller'" in capsys.readouterr().err
    assert main(["Smith", "-", "--device", "cpu"]) == 2
    assert "give it alone" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdout", None)
    assert main(["Smith", "--device", "cpu"]) == 2
    assert "standard output is closed" in capsys.readouterr().err


def test_predict_cli_escapes_what_would_drive_the_terminal(capsys):
    """A name with ESC ] 0 ; ... BEL set the terminal's title when echoed."""
    from model.predict import main

    assert main(["a\x1b]0;pwned\x07b", "Müller", "--device", "cpu", "--top-k", "1"]) == 0
    output = capsys.readouterr().out
    assert "\x1b" not in output and "\x07" not in output
    assert "> a\\x1b]0;pwned\\x07b" in output and "> Müller" in output  # escaped as Python writes it; letters kept


def test_predict_cli_reports_a_bad_prior_without_traceback(capsys):
    from model.predict import main

    assert main(["Hinton", "--prior", '{"Klingon": 1}', "--device", "cpu"]) == 2
    assert "Klingon" in capsys.readouterr().err


def test_predictor_sets_torch_threads_when_asked(tmp_path):
    network = build_network(network_config("gru", NameEncoder().vocab_size, 2, hidden_size=4))
    save_checkpoint(
        tmp_path / "t.safetensors",
        network,
        EncoderConfig(),
        ("A", "B"),
        tiny_language_model(EncoderConfig()),
        (0.5, 0.5),
    )
    before = torch.get_num_threads()
    try:
        Predictor.from_path(tmp_path / "t.safetensors", device="cpu", num_threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("enabled_before", [True, False])
def test_predictor_leaves_the_garbage_collector_as_it_found_it(predictor, enabled_before):
    (gc.enable if enabled_before else gc.disable)()
    try:
        predictor.predict(["Hinton", "Nguyen"])
        assert gc.isenabled() is enabled_before
    finally:
        gc.enable()


def test_shipped_predictor_reads_one_letter_names_alone_and_together(shipped):
    assert [result.name for result in shipped.predict(["A"])] == ["A"]
    together = shipped.predict(["X", "O", "Li"])
    assert [result.name for result in together] == ["X", "O", "Li"]
    alone = shipped.predict(["O"])[0].predictions
    assert [p.label for p in together[1].predictions] == [p.label for p in alone]
    # The same to 1e-5, the padding-invariance bound (batch size can change a matrix product's summation order).
    assert [p.probability for p in together[1].predictions] == pytest.approx([p.probability for p in alone], abs=1e-5)


def test_predictor_rank_gives_predicts_answers_as_lists(predictor):
    names = ["Kovski", "Li", "123", "Mikez Bozov"]
    ranked = predictor.rank(names, top_k=3)
    predicted = predictor.predict(names, top_k=3)
    assert len(ranked.label_ids) == len(names)
    # ranked[:-1]: all but the explanations, which are empty when none are asked for
    for row_ids, row_probs, row_log_probs, reason, read_as, script, tokens, prediction in zip(
        *ranked[:-1], predicted, strict=True
    ):
        assert [predictor.labels[i] for i in row_ids] == [p.label for p in prediction.predictions]
        assert row_probs == [p.probability for p in prediction.predictions]
        assert row_log_probs == [p.log_probability for p in prediction.predictions]
        assert (reason, read_as, script, len(tokens)) == (
            prediction.reason,
            prediction.read_as,
            prediction.script,
            len(prediction.tokens),
        )


@pytest.mark.parametrize("method", ["rank", "predict"])
def test_predictor_builds_big_answers_without_a_cyclic_collection(predictor, method):
    """Every 700 fresh result lists would wake the collector, whose full passes over a big process's
    heap cost more than the model (the bench's process: 114k -> 81k names/s). Paused, it runs once,
    when it is switched back on."""
    names = [f"Name{'x' * (i % 9)}{i}" for i in range(2000)]
    getattr(predictor, method)(names, 3)  # encodings cached, as for names a service sees again
    phases: list[str] = []
    gc.collect()
    gc.callbacks.append(lambda phase, info: phase == "start" and phases.append(phase))
    try:
        getattr(predictor, method)(names, 3)
        collections_started = len(phases)  # an int: allocates nothing the collector tracks
    finally:
        gc.callbacks.pop()
    assert collections_started <= 1


def test_predictor_keeps_the_collector_off_until_the_last_overlapping_call_ends(predictor, monkeypatch):
    """Calls in two threads whose pauses overlap: the first one ending must not switch the collector
    back on under the second, and the last one ending must switch it on."""
    import threading

    inside = {"first": threading.Event(), "second": threading.Event()}
    release = {"first": threading.Event(), "second": threading.Event()}
    real_score = predictor.score

    def held_score(names):  # runs inside predict's pause
        name = threading.current_thread().name
        inside[name].set()
        assert release[name].wait(10)
        return real_score(names)

    monkeypatch.setattr(predictor, "score", held_score)
    gc.enable()
    threads = {name: threading.Thread(target=predictor.predict, args=([name.title()],), name=name) for name in inside}
    try:
        for name, thread in threads.items():
            thread.start()
            assert inside[name].wait(10)
        release["first"].set()
        threads["first"].join(10)
        off_while_second_runs = not gc.isenabled()
        release["second"].set()
        threads["second"].join(10)
        assert off_while_second_runs
        assert gc.isenabled()
    finally:
        for event in release.values():
            event.set()
        gc.enable()


def test_a_full_name_weighs_each_label_by_where_that_label_writes_its_surname(shipped):
    """Without a comma, each label mixes "first token is the surname" and "last token is": surname-first
    labels (Chinese, Korean, Vietnamese) lean to the first, the others to the last; given names count
    at each label's weight. With a comma the surname is the part before it."""
    from model.scoring import GIVEN_NAME_WEIGHT, OTHER_ORDER, SURNAME_FIRST, SURNAME_FIRST_GIVEN_NAME_WEIGHT

    surname_first = torch.tensor([label in SURNAME_FIRST for label in shipped.labels])
    given = torch.where(surname_first, SURNAME_FIRST_GIVEN_NAME_WEIGHT, GIVEN_NAME_WEIGHT)
    log_first = torch.where(surname_first, 1 - OTHER_ORDER, OTHER_ORDER).log()
    log_last = torch.where(surname_first, OTHER_ORDER, 1 - OTHER_ORDER).log()
    scores = shipped.score(["Ian Smith", "Smith, Ian"])
    ian, smith = scores.token_log_likelihoods[0], scores.token_log_likelihoods[1]
    expected = torch.logaddexp(log_first + ian + given * smith, log_last + smith + given * ian)
    torch.testing.assert_close(scores.log_likelihoods[0], expected.float())
    smith_first, ian_given = scores.token_log_likelihoods[2], scores.token_log_likelihoods[3]
    torch.testing.assert_close(scores.log_likelihoods[1], (smith_first + given * ian_given).float())


def test_a_full_name_in_han_or_kana_alone_has_japanese_write_its_surname_first(shipped):
    """佐藤 健: both parts Japanese (95%, 50%), yet the whole was Chinese 0.68, because Japanese took the
    last part for the surname and counted 佐藤 at the given-name weight, as for a name in Latin letters
    (Shinzo Abe). In Han characters and kana, Japanese writes the surname first, as Chinese does."""
    from model.scoring import GIVEN_NAME_WEIGHT, OTHER_ORDER, SURNAME_FIRST_GIVEN_NAME_WEIGHT

    japanese = shipped.labels.index("Japanese")
    scores = shipped.score(["佐藤 健", "Sato Ken"])
    sato, ken = scores.token_log_likelihoods[0, japanese], scores.token_log_likelihoods[1, japanese]
    first, last = math.log(1 - OTHER_ORDER), math.log(OTHER_ORDER)
    expected = torch.logaddexp(
        torch.tensor(first) + sato + SURNAME_FIRST_GIVEN_NAME_WEIGHT * ken,
        torch.tensor(last) + ken + SURNAME_FIRST_GIVEN_NAME_WEIGHT * sato,
    )
    torch.testing.assert_close(scores.log_likelihoods[0, japanese], expected)
    latin_sato, latin_ken = scores.token_log_likelihoods[2, japanese], scores.token_log_likelihoods[3, japanese]
    latin = torch.logaddexp(
        torch.tensor(last) + latin_sato + GIVEN_NAME_WEIGHT * latin_ken,
        torch.tensor(first) + latin_ken + GIVEN_NAME_WEIGHT * latin_sato,
    )
    torch.testing.assert_close(scores.log_likelihoods[1, japanese], latin)
    assert shipped.predict(["佐藤 健"], 1)[0].predictions[0].label == "Japanese"


FULL_NAMES_OF_EVERY_SHAPE = [
    "Ian Smith",
    "Smith, Ian",
    "Anna Maria Kowalska",
    "Kowalska, Anna Maria",
    "Nguyen Van Minh",
    "Smith Smith",  # one reading twice
    "Dr. Hans J. Müller",
    "Qwxzv Petrova",  # a part that is no name: left out of the sum
    "Hans 123 Schmidt",  # a part with no letters
    "Jean Pierre Paul Marie Dubois",  # more tokens than FEW_ROWS
    "Petrov, Ivan Sergeyevich Alexeyevich Nikolai",
    "田中 太郎",  # each label its own reading of the kanji; Japanese surname first in kanji
    "佐藤, 健",
    "Tanaka 太郎",  # not all in Japanese writing: Japanese takes the surname last, as in Latin letters
    "やまだ たろう",
    "Иван Петров",
    "Kim Min-jun",
    "Smith",
    "Qwxzv Zzkrt",  # no part a name
]


def _one_full_name(scorer, reading, own, token_ll):
    """The combination as the scorer documents it, for one name, one torch op at a time."""
    kept = [
        (token.read_as, position)
        for position, token in enumerate(reading.tokens)
        if token.reason is None and own[position] is None
    ]
    rows = {}
    for position, token in enumerate(reading.tokens):
        if token.reason is None:
            rows[position] = len(rows)
    in_order = sorted(kept, key=lambda kept_token: kept_token[0])
    japanese_writing = all(
        set(reading.tokens[position].script.split("+")) <= {"Han", "Hiragana", "Katakana"} for _, position in kept
    )
    log_first, log_last, given_weights = (torch.from_numpy(column) for column in scorer.orders[int(japanese_writing)])

    def weighted(surnames):
        total = torch.zeros(token_ll.shape[1])
        for _, position in in_order:
            weight = 1.0 if position in surnames else given_weights
            total += weight * token_ll[rows[position]]
        return total

    positions = [position for _, position in kept]
    if reading.surnames_before_comma:
        return weighted({p for p in positions if p < reading.surnames_before_comma} or {positions[0]})
    return torch.logaddexp(log_first + weighted({positions[0]}), log_last + weighted({positions[-1]}))


def _summed_names(scores):
    """(reading, token reasons, first token row) of each name of `scores` whose parts are summed."""
    return [
        (reading, own, start)
        for reading, own, start, stop in zip(
            scores.readings, scores.token_reasons, scores.token_starts, scores.token_starts[1:], strict=False
        )
        if stop - start > 1 and any(reason is None for reason in own)
    ]


def test_a_name_of_many_parts_is_summed_apart_and_pads_no_other_sum(shipped):
    """Padding every sum of a batch to its widest name made one name of 300 parts among 900 full names
    hold 39 MB a gathered array (the library caps no name); wide sums are added with their own width."""
    import tracemalloc

    scorer = shipped.scorer
    wide = " ".join(["Li", "Wu", "Xu", "Ng"] * 21)  # 84 parts in 251 characters: MAX_NAME_CHARACTERS is 256
    scores = scorer.score(["Anna Schmidt", "Ivan Petrov", "Kim Min-jun"] * 300 + [wide])
    summed = _summed_names(scores)
    assert len(summed) == 901
    tracemalloc.start()
    try:
        together = scorer._weighted_sums(summed, scores.token_log_likelihoods)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20
    apart = torch.cat([scorer._weighted_sums([name], scores.token_log_likelihoods) for name in summed])
    assert torch.equal(together, apart)


def test_a_batch_of_full_names_is_combined_and_ranked_as_each_name_on_its_own(shipped):
    """The scorer sums every full name of a batch together (numpy, a column at a time) and ranks all
    their tokens in one pass; each name must get what the per-name definition gives it, in any batch
    position, and each token what ranking its own rows alone gives."""
    from model.scoring import _top

    scorer = shipped.scorer
    names = FULL_NAMES_OF_EVERY_SHAPE * 3
    scores = scorer.score(names)
    for index, (name, reading) in enumerate(zip(names, scores.readings, strict=True)):
        first, stop = scores.token_starts[index], scores.token_starts[index + 1]
        own = scores.token_reasons[index]
        if stop - first > 1 and any(reason is None for reason in own):
            expected = _one_full_name(scorer, reading, own, scores.token_log_likelihoods[first:stop])
            torch.testing.assert_close(scores.log_likelihoods[index], expected, msg=name)
    summed = _summed_names(scores)
    forward = scorer._weighted_sums(summed, scores.token_log_likelihoods)
    backward = scorer._weighted_sums(summed[::-1], scores.token_log_likelihoods)
    assert torch.equal(forward, backward.flip(0))  # a name's sum does not depend on where it sits
    log_prior = shipped.log_prior_for("uniform")
    ranked = scores.rank(3, log_prior)
    for index, tokens in enumerate(ranked.tokens):
        first, stop = scores.token_starts[index], scores.token_starts[index + 1]
        if len(scores.readings[index].tokens) < 2 or scores.reasons[index] == "not-a-name":
            continue
        ids, probabilities, log_probabilities = _top(scores.token_log_likelihoods[first:stop] + log_prior, 3)
        readable = [token for token, read in zip(tokens, scores.readings[index].tokens, strict=True) if not read.reason]
        for row, token in enumerate(readable):  # the readable tokens have a row each, in order
            if token.reason is None:
                answer = (token.label_ids, token.probabilities, token.log_probabilities)
                assert answer == (ids[row], probabilities[row], log_probabilities[row]), names[index]


@pytest.mark.parametrize(
    ("name", "label"),
    [("Ian Smith", "English"), ("Juan Smith", "English"), ("Ian Müller", "German"), ("Sean O'Brien", "Irish")],
)
def test_a_given_name_that_reads_as_a_chinese_syllable_does_not_make_the_name_chinese(shipped, name, label):
    """Ian and Juan alone read as Chinese surnames; an earlier rule took the first token as the surname
    whenever it read surname-first, for every label, and answered these Chinese."""
    (answer,) = shipped.predict([name], top_k=1)
    assert answer.predictions[0].label == label, answer


def test_clear_caches_forgets_readings_and_encodings_and_answers_stay_the_same(predictor):
    names = ["Nguyen", "Smith", "Иванов"]
    before = predictor.predict(names, top_k=2)
    assert predictor.reader.read.cache_info().currsize > 0
    predictor.clear_caches()
    assert predictor.reader.read.cache_info().currsize == 0
    assert predictor.encoder._encode_cached.cache_info().currsize == 0
    assert predictor.predict(names, top_k=2) == before
    assert predictor.reader.read.cache_info().misses > 0


@pytest.mark.parametrize(
    ("plain", "spoofed"),
    [("Smith", "Sm\u0456th"), ("Hardy", "Hard\u0443"), ("Maxwell", "Ma\u0445well"), ("Bauer", "\u0392auer")],
)
def test_a_name_with_a_lookalike_letter_gets_the_answer_of_the_name_it_looks_like(shipped, plain, spoofed):
    """Smіth (Cyrillic і) was Russian 0.81, its one Cyrillic letter counted as a Russian script; Hardу
    (Cyrillic у) read "hardu", Russian 0.82."""
    as_written, looking_alike = shipped.predict([plain, spoofed], top_k=3)
    assert looking_alike.predictions == as_written.predictions and looking_alike.read_as == as_written.read_as
    assert "+" in looking_alike.script  # the answer still says the word mixes two alphabets


def test_a_name_whose_readable_parts_are_no_names_abstains_with_its_most_telling_reason(shipped):
    """Björk is judged no name and Guðmundsdóttir has an Icelandic ð: the ð is what the caller needs
    to hear (REASON_PRECEDENCE), as for a name whose parts are all unreadable."""
    icelandic, mash = shipped.predict(["Björk Guðmundsdóttir", "Qwxz Zzqx"])
    assert [token.reason for token in icelandic.tokens] == ["not-a-name", "unsupported-letters"]
    assert icelandic.reason == "unsupported-letters" and mash.reason == "not-a-name"


def test_a_label_with_readings_of_its_own_scores_their_mean_and_the_others_the_common_reading(shipped):
    """王小明: Chinese reads wang + xiao ming (their mean), Japanese its pykakasi reading, the rest the Mandarin
    reading as one; the prior comes off once and the token's evidence (its script) is added once to each."""
    scorer = shipped.scorer
    token = scorer.reader.read("王小明").tokens[0]
    readings = dict(token.alternatives)
    texts = [token.read_as, readings["Japanese"][0], *readings["Chinese"]]
    net_log_probs, _, _ = scorer._run(texts)
    evidence = scorer.evidence.log_likelihood(token.features)
    expected = net_log_probs[0] - scorer.log_prior + evidence
    chinese, japanese = shipped.labels.index("Chinese"), shipped.labels.index("Japanese")
    expected[japanese] = net_log_probs[1, japanese] - scorer.log_prior[japanese] + evidence[japanese]
    expected[chinese] = (net_log_probs[2, chinese] + net_log_probs[3, chinese]) / 2 - scorer.log_prior[chinese]
    expected[chinese] += evidence[chinese]
    scores = scorer.score(["Smith", "王小明", "田中"])  # in a batch with names of one reading
    assert torch.allclose(scores.token_log_likelihoods[1], expected, atol=1e-5)
    alone = scorer.score(["王小明"]).token_log_likelihoods[0]  # the lone path's network sums in its own order
    assert torch.allclose(scores.token_log_likelihoods[1], alone, atol=1e-5)


def test_a_min_probability_may_be_a_numpy_number(shipped):
    import numpy as np

    assert shipped.rank(["Smith"], min_probability=np.float32(0.5)).reasons == [None]


@pytest.mark.parametrize("floor", [float("nan"), -0.1, 1.5, "0.5", True])
def test_a_min_probability_outside_0_to_1_is_refused_not_taken_as_no_floor(shipped, floor):
    with pytest.raises(ValueError, match="min_probability"):
        shipped.rank(["Smith"], min_probability=floor)
    with pytest.raises(ValueError, match="min_probability"):
        shipped.rank_requests([(["Smith"], RankQuery(1, "dataset", floor))])
