# A webhook receiver written the way a customer would: Python's http.server checking each POST
# with the `standardwebhooks` library and the secret the hook's creation showed (read from the
# file named by the first argument, written once the hook exists). It answers 204 to a POST
# that verifies and whose tampered copy does not, 401 otherwise, and logs one JSON line per
# POST to the file named by the second argument. It prints its port first.
# Used by crates/webhooks/tests/delivery.rs and crates/api/tests/webhooks.rs.
import http.server, json, sys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

secret_file, log = sys.argv[1], sys.argv[2]

class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = dict(self.headers.items())
        hook = Webhook(open(secret_file).read().strip())
        try:
            event = hook.verify(body, headers)
            verified = True
        except WebhookVerificationError as e:
            event, verified = {"error": str(e)}, False
        try:
            hook.verify(body + b" ", headers)
            tampered_verified = True
        except WebhookVerificationError:
            tampered_verified = False
        with open(log, "a") as f:
            f.write(json.dumps({"verified": verified, "tampered_verified": tampered_verified,
                                "event": event}) + "\n")
        self.send_response(204 if verified and not tampered_verified else 401)
        self.end_headers()

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
