from tests.helpers import submit, text
from tests.smtp import sign_in_code

def test_flow(client, mail_server):
    r = submit(client, "/join", display_name="Ann", email="Ann@Example.org")
    assert r.status_code == 302, text(r)
    msg = mail_server.last_to("ann@example.org")
    code = sign_in_code(msg)
    r = submit(client, "/sign-in/code", code=code)
    assert r.status_code == 302, text(r)
    r = client.get("/account")
    assert "ann@example.org" in text(r)
    assert client.get("/healthz").json["database"] == "ok"
