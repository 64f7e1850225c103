"""The one Settings value: every environment variable's accepted forms, and refused ones named.

Built from plain dicts (``Settings.read(environ, stored)``): no variable of the process is
set or cleared, nothing private is patched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api_client.errors import ConfigError
from api_client.runtime import Runtime
from api_client.settings import (
    DEFAULT_BASE_URL,
    MONEY_NAMES,
    Settings,
    SettingsStore,
    StoredSettings,
    resolve_api_key,
    resolve_ca_bundle,
    settings_path,
)


def read(**env: str) -> Settings:
    return Settings.read(env)


def refused(name: str, value: str, *words: str) -> str:
    """The message of the one problem reading ``name=value`` gives; it names the variable and the value."""
    settings = read(**{name: value})
    assert [n for n, _ in settings.problems] == [name], settings.problems
    with pytest.raises(ConfigError) as caught:
        settings.check(name)
    message = str(caught.value)
    assert message.startswith(name) and repr(value.strip().lower() if name == "FLUX2_LORA_CHECK_LORAS" else value) \
        in message, message
    for word in words:
        assert word in message, message
    return message


def test_nothing_set_gives_the_defaults():
    settings = read()
    assert settings.problems == () and settings.check() is settings
    assert (settings.budget, settings.budget_usd, settings.period, settings.scope, settings.floor) == (
        None, None, "process", "machine", None)
    assert (settings.log_wait, settings.connect_timeout, settings.read_timeout, settings.max_in_flight) == (
        60.0, 10.0, 180.0, 8)
    assert settings.cache_on and settings.cache_dir is None and settings.cache_max_bytes == 2 * 1024**3
    assert settings.ledger is None and settings.check_loras and settings.check_loras_source == "the default"
    assert settings.base_url == DEFAULT_BASE_URL and settings.hf_endpoint == "https://huggingface.co"
    assert (settings.budget_source, settings.period_source) == (
        "environment variable FLUX2_LORA_CREDIT_BUDGET", "the default")


def test_a_settings_value_is_immutable_and_can_be_built_directly():
    settings = Settings(budget=500.0, period="day")
    with pytest.raises(AttributeError):
        settings.budget = 1.0  # type: ignore[misc]
    assert settings.ledger_period and not settings.key_scope and settings.check() is settings


@pytest.mark.parametrize(("raw", "expected"), [
    ("500", 500.0), (" 1e6 ", 1e6), ("0", 0.0), ("", None), ("none", None), ("OFF", None)])
def test_credit_budget_accepted(raw, expected):
    settings = read(FLUX2_LORA_CREDIT_BUDGET=raw)
    assert settings.budget == expected and settings.budget_source == "environment variable FLUX2_LORA_CREDIT_BUDGET"


@pytest.mark.parametrize("raw", ["-1", "abc", "inf", "nan", "5 credits"])
def test_credit_budget_refused(raw):
    refused("FLUX2_LORA_CREDIT_BUDGET", raw, "a number of credits, 0 or more")


@pytest.mark.parametrize(("raw", "expected"), [
    ("5", 5.0), ("$5", 5.0), ("$ 4.50", 4.5), ("1,000", 1000.0), ("0", 0.0), ("", None), ("none", None)])
def test_budget_usd_accepted(raw, expected):
    assert read(FLUX2_LORA_BUDGET_USD=raw).budget_usd == expected


@pytest.mark.parametrize("raw", ["-5", "+5", "$$5", "five", "inf", "-$5"])
def test_budget_usd_refused(raw):
    refused("FLUX2_LORA_BUDGET_USD", raw, "an amount in USD, 0 or more, such as 5 or $5")


@pytest.mark.parametrize(("raw", "expected"), [("", "process"), ("day", "day"), ("Month", "month"), ("all", "all")])
def test_budget_period_accepted(raw, expected):
    settings = read(FLUX2_LORA_BUDGET_PERIOD=raw)
    assert settings.period == expected
    assert settings.period_source == ("environment variable FLUX2_LORA_BUDGET_PERIOD" if raw else "the default")


def test_budget_period_refused():
    refused("FLUX2_LORA_BUDGET_PERIOD", "week", "process, day, month, all")


@pytest.mark.parametrize(("raw", "expected"), [("", "machine"), ("machine", "machine"), ("KEY", "key")])
def test_budget_scope_accepted(raw, expected):
    assert read(FLUX2_LORA_BUDGET_SCOPE=raw, FLUX2_LORA_BUDGET_PERIOD="day").scope == expected


def test_budget_scope_refused():
    refused("FLUX2_LORA_BUDGET_SCOPE", "team", "machine", "key")


def test_scope_key_needs_a_day_or_month_period_and_a_usd_budget():
    wrong_period = read(FLUX2_LORA_BUDGET_SCOPE="key")
    with pytest.raises(ConfigError, match="budget period must be day or month"):
        wrong_period.check(*MONEY_NAMES)
    credits_only = read(FLUX2_LORA_BUDGET_SCOPE="key", FLUX2_LORA_BUDGET_PERIOD="day", FLUX2_LORA_CREDIT_BUDGET="5")
    with pytest.raises(ConfigError, match="only a credit budget is set"):
        credits_only.check(*MONEY_NAMES)
    fine = read(FLUX2_LORA_BUDGET_SCOPE="key", FLUX2_LORA_BUDGET_PERIOD="month", FLUX2_LORA_BUDGET_USD="$5")
    assert fine.check(*MONEY_NAMES).key_scope


@pytest.mark.parametrize(("raw", "expected"), [("0.5", 0.5), ("$1", 1.0), ("", None), ("off", None)])
def test_balance_floor_accepted(raw, expected):
    assert read(FLUX2_LORA_BALANCE_FLOOR=raw).floor == expected


@pytest.mark.parametrize("raw", ["-1", "x", "inf"])
def test_balance_floor_refused(raw):
    refused("FLUX2_LORA_BALANCE_FLOOR", raw, "an amount in USD, 0 or more (or empty for no floor)")


@pytest.mark.parametrize(("raw", "expected"), [("", 60.0), ("0", 0.0), ("1.5", 1.5)])
def test_log_wait_accepted(raw, expected):
    settings = read(FLUX2_LORA_LOG_WAIT=raw)
    assert settings.log_wait == expected and settings.usage_lag == (expected or 60.0)


@pytest.mark.parametrize("raw", ["-1", "x", "inf", "nan"])
def test_log_wait_refused(raw):
    refused("FLUX2_LORA_LOG_WAIT", raw, "a number of seconds, 0 or more")


@pytest.mark.parametrize("name", ["FLUX2_LORA_CONNECT_TIMEOUT", "FLUX2_LORA_READ_TIMEOUT"])
def test_timeouts(name):
    field = "connect_timeout" if "CONNECT" in name else "read_timeout"
    assert getattr(read(**{name: "2.5"}), field) == 2.5
    for raw in ("0", "-1", "x", "inf"):
        refused(name, raw, "a number of seconds above 0")


def test_max_in_flight():
    assert read(FLUX2_LORA_MAX_IN_FLIGHT="1").max_in_flight == 1
    assert read(FLUX2_LORA_MAX_IN_FLIGHT=" 16 ").max_in_flight == 16
    for raw in ("0", "1.5", "x", "-3"):
        refused("FLUX2_LORA_MAX_IN_FLIGHT", raw, "a whole number of requests, 1 or more", "default of 8")


@pytest.mark.parametrize(("raw", "on"), [("", True), ("1", True), ("yes", True), ("0", False), ("off", False),
                                         ("No", False), ("false", False), ("anything", True)])
def test_cache_switch_never_refused(raw, on):
    settings = read(FLUX2_LORA_CACHE=raw)
    assert settings.cache_on is on and settings.problems == ()


def test_cache_folder_and_size(tmp_path):
    settings = read(FLUX2_LORA_CACHE_DIR="~/pictures", FLUX2_LORA_CACHE_MAX_BYTES="500M")
    assert settings.cache_dir == Path.home() / "pictures" and settings.cache_max_bytes == 500 * 1024**2
    assert read(FLUX2_LORA_CACHE_MAX_BYTES="1.5GiB").cache_max_bytes == int(1.5 * 1024**3)
    for raw in ("lots", "-1", "2 TB please"):
        refused("FLUX2_LORA_CACHE_MAX_BYTES", raw, "a size in bytes")


def test_ledger_and_homes(tmp_path):
    settings = read(FLUX2_LORA_LEDGER=str(tmp_path / "l.sqlite3"), XDG_CONFIG_HOME=str(tmp_path / "c"),
                    XDG_CACHE_HOME=str(tmp_path / "k"), XDG_DATA_HOME=str(tmp_path / "d"))
    assert settings.ledger == tmp_path / "l.sqlite3"
    assert (settings.config_home, settings.cache_home, settings.data_home) == (
        tmp_path / "c", tmp_path / "k", tmp_path / "d")
    assert read().cache_home == Path.home() / ".cache"


@pytest.mark.parametrize(("raw", "on"), [("", True), ("1", True), ("on", True), ("0", False), ("OFF", False)])
def test_check_loras_accepted(raw, on):
    settings = read(FLUX2_LORA_CHECK_LORAS=raw)
    assert settings.check_loras is on
    assert settings.check_loras_source == ("environment variable FLUX2_LORA_CHECK_LORAS" if raw else "the default")


def test_check_loras_refused():
    refused("FLUX2_LORA_CHECK_LORAS", "nope", "1 (check LoRAs before sending) or 0 (do not)", "restart")


@pytest.mark.parametrize("name", ["AIML_API_BASE", "AIMLAPI_API_BASE"])
def test_base_url(name):
    assert read(**{name: "https://b.example/v1/"}).base_url == "https://b.example/v1"
    assert read(**{name: "http://127.0.0.1:8188/v1"}).base_url == "http://127.0.0.1:8188/v1"
    for bad in ("http://api.example/v1", "https://user:pw@api.example/v1", "https://a\\b.example/"):
        settings = read(**{name: bad})
        with pytest.raises(ConfigError, match=f"the base URL from {name}"):
            settings.check("base_url")


def test_hf_endpoint():
    assert read(HF_ENDPOINT="https://hf-mirror.example/").hf_endpoint == "https://hf-mirror.example"
    with pytest.raises(ConfigError, match="Hugging Face endpoint from HF_ENDPOINT"):
        read(HF_ENDPOINT="http://hf-mirror.example").check("HF_ENDPOINT")


@pytest.mark.parametrize("name", ["AIML_API_KEY", "AIMLAPI_API_KEY"])
def test_api_key_variables(name, tmp_path):
    key = resolve_api_key({name: " sk-abc "})
    assert (key.value, key.source) == ("sk-abc", f"environment variable {name}")
    with pytest.raises(ConfigError, match=f"environment variable {name} contains spaces") as caught:
        resolve_api_key({name: "sk-a b"})
    assert "sk-a b" not in str(caught.value)
    assert "sk-abc" not in repr(read(**{name: "sk-abc"}))  # the key is never part of Settings


@pytest.mark.parametrize("name", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"])
def test_ca_bundle_variables(name, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert resolve_ca_bundle({name: str(bundle)}) == str(bundle)
    with pytest.raises(ConfigError, match=f"{name} names the certificate bundle"):
        resolve_ca_bundle({name: str(tmp_path / "missing.pem")})


def test_one_bad_value_does_not_hide_or_block_the_others():
    settings = read(FLUX2_LORA_CACHE_MAX_BYTES="lots", FLUX2_LORA_LOG_WAIT="x", FLUX2_LORA_CREDIT_BUDGET="5")
    assert [name for name, _ in settings.problems] == ["FLUX2_LORA_LOG_WAIT", "FLUX2_LORA_CACHE_MAX_BYTES"]
    assert settings.budget == 5.0 and settings.problem("FLUX2_LORA_CHECK_LORAS") is None
    with pytest.raises(ConfigError, match="FLUX2_LORA_LOG_WAIT"):
        settings.check(*MONEY_NAMES)  # what a paid request depends on
    with pytest.raises(ConfigError, match="FLUX2_LORA_LOG_WAIT"):
        settings.check()  # everything: the first in reading order


def test_stored_settings_win_and_are_named_as_settings():
    env = {"FLUX2_LORA_CREDIT_BUDGET": "100", "FLUX2_LORA_BUDGET_PERIOD": "bad", "FLUX2_LORA_CHECK_LORAS": "nope"}
    settings = Settings.read(env, {"credit_budget": 7, "budget_period": "day", "check_loras": "off"})
    assert (settings.budget, settings.budget_source) == (7.0, "the Flux2 LoRA credit budget setting")
    assert (settings.period, settings.period_source) == ("day", "the Flux2 LoRA budget period setting")
    assert not settings.check_loras and settings.check_loras_setting == "off"
    assert settings.problems == ()  # a variable a setting overrides is not read at all
    bad = Settings.read({}, {"budget_usd": "-2", "balance_floor": "lots"})
    assert [str(e).split(" must")[0] for _, e in bad.problems] == ["The budget in USD setting",
                                                                    "The balance floor setting"]


def test_runtime_reads_again_only_on_a_change():
    env = {"FLUX2_LORA_CREDIT_BUDGET": "5"}
    runtime = Runtime(env)
    first = runtime.settings()
    assert runtime.settings() is first and runtime.settings({}) is first
    env["FLUX2_LORA_CREDIT_BUDGET"] = "6"
    second = runtime.settings()
    assert second is not first and second.budget == 6.0
    assert runtime.settings({"credit_budget": 9.0}).budget == 9.0 and runtime.settings() is second


def test_runtime_parts_are_made_once():
    runtime = Runtime({})
    made = []
    one = runtime.part("thing", lambda: made.append(1) or object())
    assert runtime.part("thing", object) is one and made == [1]
    assert runtime.replace("thing", "new") == "new" and runtime.part("thing", object) == "new"


def test_store_keeps_every_setting_in_one_file(tmp_path):
    stored = StoredSettings()
    stored.use_file(settings_path(tmp_path))
    stored.set("credit_budget", "500")
    stored.set("check_loras", "off")
    kept = json.loads(settings_path(tmp_path).read_text())
    assert kept["credit_budget"] == 500.0 and kept["check_loras"] == "off"
    assert stored.values()["credit_budget"] == 500.0
    with pytest.raises(ConfigError, match="The credit budget setting must be"):
        stored.set("credit_budget", "lots")


def test_the_old_lora_switch_file_is_still_read_then_folded_in(tmp_path):
    folder = tmp_path / "flux2_lora"
    folder.mkdir()
    (folder / "lora_check_setting.json").write_text(json.dumps({"check_loras": "off"}))
    store = SettingsStore(folder / "settings.json")
    assert store.load()["check_loras"] == "off"  # no settings.json yet
    (folder / "settings.json").write_text(json.dumps({"credit_budget": 5}))
    assert store.load() == {**dict.fromkeys(SettingsStore.KEYS), "credit_budget": 5, "check_loras": "off"}
    store.set("balance_floor", 1.0)  # any setting kept: the switch moves into settings.json
    assert not (folder / "lora_check_setting.json").exists()
    assert json.loads((folder / "settings.json").read_text())["check_loras"] == "off"


def test_a_damaged_store_is_a_problem_named_with_its_file(tmp_path):
    path = settings_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    stored = StoredSettings()
    stored.use_file(path)
    with pytest.raises(ConfigError, match="is damaged"):
        stored.values()
    path.unlink()  # deleted, as the error advises
    assert stored.values()["credit_budget"] is None


@pytest.mark.parametrize("other", ["lora switch", "balance floor"])
def test_two_settings_set_at_once_are_both_kept(tmp_path, monkeypatch, other):
    """At page load the frontend posts every setting it holds at once: the budget (budget route), the floor
    (balance route) and the LoRA switch (LoRA route), on the settings worker's two threads; two processes
    may share the user folder too. Each post reads settings.json, changes its key and writes it whole.
    Neither write may lose the other's setting: a lost budget lets runs be sent (and billed) without it,
    silently, after a restart (before a page reposts it) or the next time the file is read."""
    import threading

    from api_client.lora.switch import write_setting

    path = settings_path(tmp_path)
    both_read = threading.Barrier(2, timeout=5)
    save = SettingsStore.save

    def save_after_both_read(self, values):
        try:
            both_read.wait()  # both have read the file: the race at its worst
        except threading.BrokenBarrierError:
            pass  # the store let only one in at a time: nothing to wait for
        save(self, values)

    monkeypatch.setattr(SettingsStore, "save", save_after_both_read)
    money = StoredSettings()
    money.use_file(path)
    if other == "lora switch":
        second = threading.Thread(target=write_setting, args=(path.parent, "off"))
    else:
        second = threading.Thread(target=money.set, args=("balance_floor", "1"))
    threads = [threading.Thread(target=money.set, args=("credit_budget", "5")), second]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    kept = json.loads(path.read_text())
    assert kept["credit_budget"] == 5.0
    assert kept["check_loras"] == "off" if other == "lora switch" else kept["balance_floor"] == 1.0
    restarted = StoredSettings()
    restarted.use_file(path)
    assert restarted.values()["credit_budget"] == 5.0
    money.reload()  # read again (the next setting set does)
    assert money.values()["credit_budget"] == 5.0


def test_the_lora_switch_set_on_a_damaged_file_keeps_the_money_refusal(tmp_path):
    """A damaged settings.json refuses paid runs until the money settings are set again (the error says so).
    Before the switch joined that file, turning the LoRA check on or off never touched it; now the switch's
    write replaces the damaged file with the switch alone: the refusal is gone, and with it the budget the
    file held, so the next run is sent (and billed) with no budget, and nothing says so."""
    path = settings_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text('{"credit_budget": 5, "balance_floor": 1')  # cut off mid-write by hand or a full disk
    money = StoredSettings()
    money.use_file(path)
    with pytest.raises(ConfigError, match="is damaged"):
        money.values()
    from api_client.lora.switch import write_setting

    with pytest.raises(ConfigError, match="is damaged"):
        write_setting(path.parent, "off")  # refused: the file holds the money settings
    with pytest.raises(ConfigError, match="is damaged"):
        money.values()
    assert path.read_text() == '{"credit_budget": 5, "balance_floor": 1'


def test_the_lora_switch_route_on_a_damaged_file_answers_409_and_keeps_the_file(tmp_path):
    from api_client.lora.switch import setting_post_answer

    path = settings_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("not json")
    status, answer = setting_post_answer(b'{"check_loras": "off"}', "application/json", path.parent, environ={})
    assert status == 409
    assert "is damaged" in answer["error"] and "not saved" in answer["error"]
    assert path.read_text() == "not json"


def test_a_setting_read_back_late_does_not_undo_one_set_meanwhile(tmp_path, monkeypatch):
    """Setting the budget writes the file, then reads it all back into the settings in force. If that read
    is applied after the floor (set on the settings worker's other thread at page load) was written and
    applied, the budget's older read puts the floor back to none in this process: the file keeps it, but
    runs go out without the floor until the next setting is set or ComfyUI restarts."""
    import threading

    path = settings_path(tmp_path)
    money = StoredSettings()
    money.use_file(path)
    floor_set = threading.Event()
    load = SettingsStore.load
    loads: dict[str, int] = {}

    def load_then_wait(self):
        kept = load(self)
        name = threading.current_thread().name
        loads[name] = loads.get(name, 0) + 1
        if name == "budget" and loads[name] == 2:  # the budget's read back (its first read is in set)
            floor_set.wait(5)  # the floor is set meanwhile (or, kept out until this set is done, not)
        return kept

    monkeypatch.setattr(SettingsStore, "load", load_then_wait)
    budget = threading.Thread(target=money.set, args=("credit_budget", "5"), name="budget")
    budget.start()
    while loads.get("budget", 0) < 2:
        threading.Event().wait(0.01)
    floor = threading.Thread(target=lambda: (money.set("balance_floor", "1"), floor_set.set()), name="floor")
    floor.start()
    budget.join(30)
    floor.join(30)
    assert json.loads(path.read_text())["balance_floor"] == 1.0
    assert money.values()["balance_floor"] == 1.0 and money.values()["credit_budget"] == 5.0
