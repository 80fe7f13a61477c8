#!/usr/bin/env python3
"""SMTP submission load: CONNECTIONS client processes start together; each opens one
connection, does EHLO, STARTTLS (certificate not verified: the servers under test use
self-signed ones), EHLO, AUTH PLAIN, then sends MESSAGES messages of about SIZE bytes one
after another on that connection (MAIL, RCPT, DATA each awaiting its reply, as smtplib and
the mail libraries of most applications do), then QUIT.

Prints one JSON object: accepted (messages answered 250 after DATA), refused (any other
answer, or a lost connection: the rest of that connection's messages count as refused),
seconds (wall clock from the common start until the last process ended) and client_cpu
(CPU seconds all client processes used, so the script running the benchmark can tell whether
the client, not the server, was the limit).

Usage: submission_load.py HOST PORT USER PASSWORD CONNECTIONS MESSAGES SIZE FROM RCPT_DOMAIN
"""

import json
import multiprocessing
import resource
import smtplib
import ssl
import sys
import time


def message(sender, recipient, number, size):
    head = (
        f"From: Bench <{sender}>\r\nTo: {recipient}\r\nSubject: Submission bench {number}\r\n"
        f"Message-ID: <bench-{number}@{sender.split('@')[1]}>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    line = "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return (head + body).encode("ascii")


def worker(args, index, start, results):
    host, port, user, password, messages, size, sender, domain = args
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    accepted = 0
    start.wait()
    try:
        with smtplib.SMTP(host, port, timeout=60) as client:
            client.ehlo("bench.client.test")
            client.starttls(context=context)
            client.ehlo("bench.client.test")
            client.login(user, password)
            for n in range(messages):
                number = index * messages + n
                recipient = f"r{number}@{domain}"
                client.sendmail(sender, [recipient], message(sender, recipient, number, size))
                accepted += 1
    except (smtplib.SMTPException, OSError) as error:
        print(f"connection {index}: {error!r}", file=sys.stderr)
    results.put(accepted)


def main():
    if len(sys.argv) != 10:
        sys.exit(__doc__)
    host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    connections, messages, size = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
    sender, domain = sys.argv[8], sys.argv[9]
    args = (host, port, user, password, messages, size, sender, domain)
    start = multiprocessing.Event()
    results = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(target=worker, args=(args, i, start, results))
        for i in range(connections)
    ]
    for w in workers:
        w.start()
    time.sleep(0.5)  # every process is up and waiting: only the load is timed
    began = time.monotonic()
    start.set()
    accepted = sum(results.get() for _ in workers)
    seconds = time.monotonic() - began
    for w in workers:
        w.join()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({
        "accepted": accepted,
        "refused": connections * messages - accepted,
        "seconds": round(seconds, 3),
        "client_cpu": round(usage.ru_utime + usage.ru_stime, 3),
    }))


if __name__ == "__main__":
    main()
