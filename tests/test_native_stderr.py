"""libmpg123's notes are kept off the terminal; any other line native code writes meanwhile is written on
(``media/native_stderr.py``). File descriptor 2 is the process's, so each check runs in a fresh interpreter whose
stderr the test reads."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHATTER = "os.write(2, b'Note: Trying to resync...\\n[src/libmpg123/parse.c:wetwork():1349] error: Giving up\\n')"


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60,
                          check=True)


def test_libmpg123_lines_are_dropped_and_other_lines_written_on() -> None:
    r = run(f"""
        import os
        from diffgap_search.media.native_stderr import mpg123_quiet
        with mpg123_quiet():
            {CHATTER}
            os.write(2, b'a real problem\\n')
            with mpg123_quiet():  # nested: still caught, written on when the outer section ends
                os.write(2, b'Warning: Xing stream size off\\nanother one\\n')
            os.write(2, b'Note: Skipped 1024 bytes in input.\\n')
        os.write(2, b'after\\n')
        """)
    assert r.stderr == "a real problem\nanother one\nafter\n"


def test_two_threads_take_turns_and_lose_nothing() -> None:
    r = run(f"""
        import os, threading
        from diffgap_search.media.native_stderr import mpg123_quiet

        def work(name):
            for k in range(50):
                with mpg123_quiet():
                    {CHATTER}
                    os.write(2, f'{{name}} {{k}}\\n'.encode())

        threads = [threading.Thread(target=work, args=(n,)) for n in ('a', 'b')]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        os.write(2, b'after\\n')
        """)
    lines = r.stderr.splitlines()
    assert lines[-1] == "after"
    assert sorted(lines[:-1]) == sorted(f"{n} {k}" for n in "ab" for k in range(50))


def test_a_process_without_stderr_decodes_as_well() -> None:
    r = run("""
        import os
        from diffgap_search.media.native_stderr import mpg123_quiet
        with mpg123_quiet():  # its private file made while there is a stderr
            pass
        os.close(2)  # then stderr goes away (a daemon's)
        with mpg123_quiet():
            pass
        print("ok")
        """)
    assert r.stdout == "ok\n"
