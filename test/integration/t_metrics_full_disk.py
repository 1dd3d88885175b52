#!/usr/bin/python3
"""metrics_file on a full disk: mailward starts all the same, and mail flows.

mailward runs in a mount namespace of its own (unshare) where the
metrics_file's directory is a 64 KiB tmpfs, filled up before it starts.

- It starts (before: "metrics_file ...: write: No space left on device"
  and exit status 1, so a full /var kept the mail service from starting);
  its log says event=metrics_failed step=write error="No space left on
  device" once.
- A message is delivered over STARTTLS meanwhile.
- Once the filler file is removed, the metrics file appears (within the
  10 s interval and some), event=metrics_written is logged, and the file
  counts the message.
"""

import os
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

MSG = b"From: a@sender.test\r\nTo: b@rcpt.test\r\nSubject: full\r\n\r\nhi\r\n"


def main():
    if not mwtest.is_root():
        mwtest.skip("a tmpfs in a mount namespace needs root")
    with mwtest.Env("metrics_full_disk") as env:
        be = env.recorder()
        full = env.path("full")
        os.makedirs(full)
        prom = os.path.join(full, "m", "mailward.prom")
        wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-ec",
                "mount -t tmpfs -o size=64k tmpfs %s; mkdir %s/m; chown nobody %s/m; "
                "dd if=/dev/zero of=%s/fill bs=4k 2>/dev/null || true; "
                'exec "$0" "$@"' % (full, full, full, full)]
        mw = env.mailward(listeners={"smtp": {"forward": "127.0.0.1:%d" % be.port}},
                          globals={"metrics_file": prom}, wrap=wrap)
        inside = "/proc/%d/root" % mw.pid
        mwtest.check(os.path.exists(inside + full + "/fill"), "no filler file in the tmpfs")
        mwtest.check(mw.alive(), "mailward did not start:\n%s" % mw.log())
        failed = [x for x in mw.log().splitlines() if "event=metrics_failed" in x]
        mwtest.eq(len(failed), 1, "event=metrics_failed lines")
        mwtest.check('step=write error="No space left on device"' in failed[0],
                     "metrics_failed line: %s" % failed[0])

        c = smtplib.SMTP("127.0.0.1", mw.port("smtp"), local_hostname="client.test",
                         timeout=20)
        c.starttls(context=mwtest.ssl_client_context(env))
        mwtest.eq(c.sendmail("a@sender.test", ["b@rcpt.test"], MSG), {}, "refused recipients")
        c.quit()
        mwtest.eq(len(be.wait_messages(1, 10)), 1, "messages at the backend")

        os.remove(inside + full + "/fill")
        mwtest.check(mwtest.wait_for(lambda: "event=metrics_written" in mw.log(), 15),
                     "no event=metrics_written after room was made:\n%s" % mw.log()[-2000:])
        m = mwtest.read_metrics(inside + prom)
        mwtest.eq(m.get("mailward_messages_total"), 1.0, "messages in the metrics file")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
