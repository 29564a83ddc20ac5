"""aiosmtpd with TLS for the paging tests: STARTTLS or implicit TLS, and optionally AUTH.

Usage: smtpd_tls.py MAILDIR CERT KEY (starttls|tls) [USER PASSWORD]

Listens on 127.0.0.1 on a port the system picks and prints that port on the first line of
its output, then serves until it is killed. Every message it accepts goes to MAILDIR with
two headers added: X-Peer-TLS (the TLS version of the connection, or "none") and
X-Authenticated-As (the user that logged in, or "nobody"). With USER, a client must log in
before sending, and only over TLS; every AUTH attempt is logged on stderr.
"""

import asyncio
import logging
import ssl
import sys
import warnings

from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Recording(Mailbox):
    async def handle_DATA(self, server, session, envelope):
        tls = server.transport.get_extra_info("ssl_object")
        user = session.auth_data.login.decode() if session.authenticated else "nobody"
        head = "X-Peer-TLS: {}\r\nX-Authenticated-As: {}\r\n".format(
            tls.version() if tls else "none", user
        )
        envelope.content = head.encode() + envelope.original_content
        return await super().handle_DATA(server, session, envelope)


def main():
    maildir, cert, key, mode = sys.argv[1:5]
    user, password = (sys.argv[5:7] + [None, None])[:2]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def authenticator(server, session, envelope, mechanism, data):
        over_tls = server.transport.get_extra_info("ssl_object") is not None
        ok = (
            over_tls
            and isinstance(data, LoginPassword)
            and data.login == user.encode()
            and data.password == password.encode()
        )
        print(f"AUTH {mechanism} tls={over_tls} ok={ok}", file=sys.stderr, flush=True)
        # handled=False: aiosmtpd answers 535 itself on a failure.
        return AuthResult(success=ok, handled=False, auth_data=data)

    options = dict(hostname="smtpd.test", auth_required=user is not None)
    if user is not None:
        options["authenticator"] = authenticator
    if mode == "starttls":
        # AUTH only after STARTTLS (aiosmtpd's own check); no mail before it either.
        factory = lambda: SMTP(
            Recording(maildir), tls_context=context, require_starttls=True, **options
        )
        wrap = None
    elif mode == "tls":
        # The whole connection is TLS: aiosmtpd does not see it (it only knows STARTTLS),
        # so the authenticator checks it instead (and aiosmtpd's warning about AUTH
        # without TLS does not apply).
        warnings.simplefilter("ignore")
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        factory = lambda: SMTP(Recording(maildir), auth_require_tls=False, **options)
        wrap = context
    else:
        sys.exit(f"unknown mode {mode!r}: expected starttls or tls")
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(factory, "127.0.0.1", 0, ssl=wrap))
    print(server.sockets[0].getsockname()[1], flush=True)
    loop.run_forever()


if __name__ == "__main__":
    main()
