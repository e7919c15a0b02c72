"""The staff's topic pages (under /polls/manage/topics): proposals to review, and each topic's
way to a published article."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response as BaseResponse

from supporters.extensions import db
from supporters.members.auth import admin_required, current_actor
from supporters.members.forms import EmptyForm
from supporters.voting import errors, topics
from supporters.voting.forms import MergeForm, PublishTopicForm, ReasonForm, TopicForm, choices_of
from supporters.voting.models import Topic, TopicStatus
from supporters.voting.views.blueprint import RenderResult, bp, error_status, load_topic


@bp.get("/manage/topics")
@admin_required
def manage_topics() -> str:
    """Proposals to review and every topic on its way to publication."""
    return _render_topics()


def _render_topics(form: TopicForm | None = None) -> str:
    return render_template(
        "voting/manage_topics.html",
        by_status=topics.topics_by_status(),
        form=form or TopicForm(),
        TopicStatus=TopicStatus,
        topic_status_label=topics.topic_status_label,
    )


@bp.post("/manage/topics")
@admin_required
def create_topic() -> RenderResult | BaseResponse:
    """Staff write a topic; it is shortlisted at once."""
    form = TopicForm()
    if not form.validate_on_submit():
        return _render_topics(form), 400
    topic = topics.create_topic(form.title.data or "", form.pitch.data or "", current_actor())
    db.session.commit()
    flash(_("Topic added to the shortlist."), "success")
    return redirect(url_for("voting.review_topic", topic_id=topic.id))


def _render_review(
    topic: Topic, *, error: str | None = None, status: int = 200, **forms: Any
) -> RenderResult:
    merge_form = forms.get("merge_form") or MergeForm()
    merge_form.into.choices = choices_of(
        (t.id, t.title) for t in topics.merge_targets(excluding=topic.id)
    )
    return render_template(
        "voting/review_topic.html",
        topic=topic,
        polls=topics.polls_offering(topic.id),
        actions=topics.allowed_actions(topic),
        action_form=EmptyForm(),
        reject_form=forms.get("reject_form") or ReasonForm(prefix="reject"),
        decline_form=forms.get("decline_form") or ReasonForm(prefix="decline"),
        merge_form=merge_form,
        publish_form=forms.get("publish_form")
        or PublishTopicForm(article_url=topic.article_url, published_on=topic.published_on),
        error=error,
        topic_status_label=topics.topic_status_label,
        TopicStatus=TopicStatus,
    ), status


@bp.get("/manage/topics/<int:topic_id>")
@admin_required
def review_topic(topic_id: int) -> RenderResult:
    """One topic: its story so far and what can happen to it next."""
    return _render_review(load_topic(topic_id))


def _topic_action(
    topic_id: int, action: Any, success: str, form: Any = None, form_name: str = ""
) -> RenderResult | BaseResponse:
    topic = load_topic(topic_id)
    form = form or EmptyForm()
    if not form.validate_on_submit():
        if isinstance(form, EmptyForm):
            abort(400)
        return _render_review(topic, status=400, **{form_name: form})
    try:
        changed = action(topic, form)
    except errors.VotingError as exc:
        db.session.rollback()
        return _render_review(
            load_topic(topic_id), error=exc.message, status=error_status(exc), **{form_name: form}
        )
    db.session.commit()
    if changed is False:
        flash(_("Nothing changed: it was already so."), "info")
    else:
        flash(success, "success")
    return redirect(url_for("voting.review_topic", topic_id=topic_id))


@bp.post("/manage/topics/<int:topic_id>/approve")
@admin_required
def approve_topic(topic_id: int) -> RenderResult | BaseResponse:
    """Shortlist a proposal."""
    return _topic_action(
        topic_id,
        lambda topic, form: topics.approve_topic(topic, current_actor()),
        _("The proposal is shortlisted: it can now be put to a vote."),
    )


@bp.post("/manage/topics/<int:topic_id>/reject")
@admin_required
def reject_topic(topic_id: int) -> RenderResult | BaseResponse:
    """Turn a proposal down, with a reason the proposer reads."""
    return _topic_action(
        topic_id,
        lambda topic, form: topics.reject_topic(topic, form.reason.data or "", current_actor()),
        _("The proposal is rejected; the patron will see your reason."),
        ReasonForm(prefix="reject"),
        "reject_form",
    )


@bp.post("/manage/topics/<int:topic_id>/merge")
@admin_required
def merge_topic(topic_id: int) -> RenderResult | BaseResponse:
    """Fold a proposal into an existing topic."""
    form = MergeForm()
    form.into.choices = choices_of((t.id, t.title) for t in topics.merge_targets())
    return _topic_action(
        topic_id,
        lambda topic, form: topics.merge_topic(topic, load_topic(form.into.data), current_actor()),
        _("The proposal is merged."),
        form,
        "merge_form",
    )


@bp.post("/manage/topics/<int:topic_id>/commission")
@admin_required
def commission_topic(topic_id: int) -> RenderResult | BaseResponse:
    """Mark a topic as commissioned: a reporter is on it."""
    return _topic_action(
        topic_id,
        lambda topic, form: topics.commission_topic(topic, current_actor()),
        _("The topic is commissioned."),
    )


@bp.post("/manage/topics/<int:topic_id>/publish")
@admin_required
def publish_topic(topic_id: int) -> RenderResult | BaseResponse:
    """Record the published article: its address and date."""
    return _topic_action(
        topic_id,
        lambda topic, form: topics.publish_topic(
            topic, form.article_url.data or "", form.published_on.data, current_actor()
        ),
        _("The topic is marked as published."),
        PublishTopicForm(),
        "publish_form",
    )


@bp.post("/manage/topics/<int:topic_id>/decline")
@admin_required
def decline_topic(topic_id: int) -> RenderResult | BaseResponse:
    """Decide not to cover a topic, with a public reason."""
    return _topic_action(
        topic_id,
        lambda topic, form: topics.decline_topic(topic, form.reason.data or "", current_actor()),
        _("The topic is declined; your reason is public."),
        ReasonForm(prefix="decline"),
        "decline_form",
    )
