"""Label Studio sync of a dataset: its link to a project, pushing tasks there, pulling the marks back."""

from datetime import datetime

import msgspec
from litestar import Controller, get, post

from eventlog import from_timestamp
from gateway.access import Role
from gateway.auth import ROLE_OPT
from gateway.clients import Clients
from gateway.integers import Int64
from workbench.annotations.v1 import annotations_pb2 as ann

# A push or pull goes through every record or task of a dataset: more than an ordinary call's deadline.
SYNC_TIMEOUT_S = 600.0


class LinkBody(msgspec.Struct, forbid_unknown_fields=True):
    project_id: Int64 = 0  # an existing project; 0 (or left out): create one
    title: str = ""  # of a created project; empty: the dataset's name


class LinkView(msgspec.Struct):
    dataset_id: str
    project_id: int
    project_url: str
    pushed_tasks: int
    linked_at: datetime | None


class LinkStatusView(msgspec.Struct):
    configured: bool  # a Label Studio server is configured (the page shows its buttons only then)
    link: LinkView | None


class PushedView(msgspec.Struct):
    pushed: int  # tasks created now
    skipped: int  # records already pushed, or without any answer yet


class PulledView(msgspec.Struct):
    recorded: int  # annotations recorded now (source "label_studio")
    unchanged: int  # marks already recorded as Label Studio holds them


def link_view(link: ann.LabelStudioLink) -> LinkView:
    return LinkView(
        dataset_id=link.dataset_id,
        project_id=link.project_id,
        project_url=link.project_url,
        pushed_tasks=link.pushed_tasks,
        linked_at=from_timestamp(link.linked_at),
    )


class LabelStudioController(Controller):
    path = "/label-studio"
    tags = ["label studio"]

    @get("/{dataset_id:str}", operation_id="getLabelStudioLink", opt={ROLE_OPT: Role.VIEWER})
    async def show(self, clients: Clients, dataset_id: str) -> LinkStatusView:
        """The dataset's Label Studio project (link null: not linked) and whether a server is configured."""
        reply = await clients.annotations.GetLabelStudioLink(ann.GetLabelStudioLinkRequest(dataset_id=dataset_id))
        return LinkStatusView(
            configured=reply.configured, link=link_view(reply.link) if reply.HasField("link") else None
        )

    @post("/{dataset_id:str}/link", operation_id="linkLabelStudio", opt={ROLE_OPT: Role.ADMIN}, status_code=200)
    async def link(self, clients: Clients, dataset_id: str, data: LinkBody | None = None) -> LinkView:
        """Links the dataset to an existing project, or to a new one with the config comparing the models."""
        body = data or LinkBody()
        request = ann.LinkLabelStudioRequest(dataset_id=dataset_id, project_id=body.project_id, title=body.title)
        return link_view((await clients.annotations.LinkLabelStudio(request)).link)

    @post("/{dataset_id:str}/push", operation_id="pushToLabelStudio", opt={ROLE_OPT: Role.ANNOTATOR}, status_code=200)
    async def push(self, clients: Clients, dataset_id: str) -> PushedView:
        """Creates a task per record not pushed yet, most-disagreed first."""
        request = ann.PushToLabelStudioRequest(dataset_id=dataset_id)
        reply = await clients.annotations.PushToLabelStudio(request, timeout=SYNC_TIMEOUT_S)
        return PushedView(pushed=reply.pushed, skipped=reply.skipped)

    @post("/{dataset_id:str}/pull", operation_id="pullFromLabelStudio", opt={ROLE_OPT: Role.ANNOTATOR}, status_code=200)
    async def pull(self, clients: Clients, dataset_id: str) -> PulledView:
        """Records the marks made in Label Studio as annotations; pulling again changes nothing."""
        request = ann.PullFromLabelStudioRequest(dataset_id=dataset_id)
        reply = await clients.annotations.PullFromLabelStudio(request, timeout=SYNC_TIMEOUT_S)
        return PulledView(recorded=reply.recorded, unchanged=reply.unchanged)
