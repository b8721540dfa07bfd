"""A throwaway SMTP server for the mail tests (aiosmtpd): it binds 127.0.0.1 on a free port, prints
`listening PORT` on stdout, and writes each message it receives to DIR as an .eml file (written aside, then
renamed, so a reader never sees half a message).

    sink.py DIR [--tls-cert CERT --tls-key KEY] [--user USER --password PASSWORD]

With a certificate, STARTTLS is offered and required before MAIL; with a user, AUTH (PLAIN/LOGIN) is required and
only accepted over TLS.
"""

import argparse
import asyncio
import os
import ssl
import sys
import uuid

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Folder:
    def __init__(self, folder):
        self.folder = folder

    async def handle_DATA(self, server, session, envelope):
        name = uuid.uuid4().hex
        partial = os.path.join(self.folder, "." + name + ".partial")
        with open(partial, "wb") as f:
            f.write(b"X-Envelope-To: " + ", ".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(b"X-Sink-TLS: " + (b"yes" if session.ssl else b"no") + b"\r\n")
            f.write(b"X-Sink-Auth: " + (session.authenticated and b"yes" or b"no") + b"\r\n")
            f.write(envelope.original_content)
        os.rename(partial, os.path.join(self.folder, name + ".eml"))
        return "250 Message accepted"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("folder")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--user")
    p.add_argument("--password")
    a = p.parse_args()
    os.makedirs(a.folder, exist_ok=True)

    tls = None
    if a.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(a.tls_cert, a.tls_key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == a.user
            and auth_data.password.decode() == a.password
        )
        return AuthResult(success=ok)

    def factory():
        kwargs = {}
        if tls:
            kwargs.update(tls_context=tls, require_starttls=True)
        if a.user:
            kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=bool(tls))
        return SMTP(Folder(a.folder), hostname="localhost", **kwargs)

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        print(f"listening {port}", flush=True)
        # Ends when the test closes stdin (or kills the process).
        await loop.run_in_executor(None, sys.stdin.read)
        server.close()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
