"""A reader joins, signs in with the emailed code, sees their account and signs out."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.smtp import MailServer, sign_in_code, sign_in_link


def test_join_sign_in_with_code_and_sign_out(
    page: Any, live_server: Any, mail_server: MailServer
) -> None:
    page.goto("/")
    page.get_by_role("link", name="Join").click()
    page.get_by_label("Your name").fill("Olena")
    page.get_by_label("Email address").fill("olena@example.org")
    page.get_by_role("button", name="Send my code").click()

    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    code = sign_in_code(mail_server.wait_for("olena@example.org")[-1])
    page.get_by_label("Code from the email").fill(code)
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", name="Hello, Olena")).to_be_visible()
    expect(page.get_by_text("olena@example.org").first).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("You are signed in")

    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    page.goto("/account")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_wrong_code_is_explained_and_the_link_signs_in_another_browser(
    browser: Any, page: Any, live_server: Any, mail_server: MailServer
) -> None:
    page.goto("/sign-in")
    page.get_by_label("Email address").fill("not an address")
    page.get_by_role("button", name="Email me a sign-in code").click()
    expect(page.get_by_text("This is not a valid email address")).to_be_visible()

    page.get_by_label("Email address").fill("petro@example.org")
    page.get_by_role("button", name="Email me a sign-in code").click()
    message = mail_server.wait_for("petro@example.org")[-1]
    page.get_by_label("Code from the email").fill(
        "000000" if sign_in_code(message) != "000000" else "111111"
    )
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("That code is not right. 4 tries left.")).to_be_visible()

    # The link opens on another device: a confirmation page whose button signs in there.
    phone = browser.new_context(base_url=live_server.url)
    try:
        other = phone.new_page()
        other.goto(sign_in_link(message))
        other.get_by_role("button", name="Sign in").click()
        expect(other.get_by_role("heading", name="Hello, petro")).to_be_visible()
    finally:
        phone.close()
