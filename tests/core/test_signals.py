"""jdl._core.signals: the handler installation fit's and the CLI's deferrals share."""

import signal
import threading

from jdl._core.signals import SIGNALS, install_handlers, restore_handlers


def handler(signum, frame):
    pass


def test_install_replaces_and_restore_puts_back():
    before = {sig: signal.getsignal(sig) for sig in SIGNALS}
    previous = install_handlers(handler)
    try:
        assert previous == before
        assert all(signal.getsignal(sig) is handler for sig in SIGNALS)
    finally:
        restore_handlers(previous)
    assert {sig: signal.getsignal(sig) for sig in SIGNALS} == before
    assert previous == {}  # forgotten once restored


def test_an_ignored_signal_is_left_ignored():
    old = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        previous = install_handlers(handler)
        assert signal.SIGTERM not in previous
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        restore_handlers(previous)
    finally:
        signal.signal(signal.SIGTERM, old)


def test_nothing_is_installed_outside_the_main_thread():
    found = []
    thread = threading.Thread(target=lambda: found.append(install_handlers(handler)))
    thread.start()
    thread.join()
    assert found == [{}]
    assert all(signal.getsignal(sig) is not handler for sig in SIGNALS)
