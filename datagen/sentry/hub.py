"""The Hugging Face Hub side: resolve the revision, list a folder's files, describe a part.

Uses ``huggingface_hub``'s own client (``HfApi.dataset_info``, ``HfApi.list_repo_tree``,
``hf_hub_url``, ``get_hf_file_metadata``), so tokens, ``HF_ENDPOINT`` mirrors and
``HF_HUB_OFFLINE`` behave as everywhere else; the bytes are then fetched by
:class:`~datagen.download.Downloader` (ranged, resumable) from the resolve URL.
"""

from __future__ import annotations

from datagen.download import RemoteFile
from datagen.hub_access import default_endpoint, hub_errors
from datagen.sentry.parts import RemotePart
from rfd_common.errors import UserError


class HubClient:
    """One dataset repository at one revision (pinned to its commit once resolved)."""

    def __init__(
        self,
        repo_id: str,
        revision: str = "main",
        endpoint: str | None = None,
        token: str | bool | None = None,
    ) -> None:
        from huggingface_hub import HfApi

        self.repo_id = repo_id
        self.revision = revision
        self.endpoint = (endpoint or default_endpoint()).rstrip("/")
        self.token = token
        self.api = HfApi(endpoint=self.endpoint, token=token)
        self.commit: str | None = None

    @property
    def pinned(self) -> str:
        return self.commit or self.revision

    def resolve_commit(self) -> str:
        """The commit ``revision`` points to; later calls use it, so a run sees one snapshot."""
        with hub_errors(f"{self.repo_id}@{self.revision} on {self.endpoint}", "--repo_id"):
            info = self.api.dataset_info(self.repo_id, revision=self.revision)
        self.commit = info.sha or self.revision
        return self.commit

    def list_files(self, folder: str) -> list[RemotePart]:
        """Every file under ``folder`` (recursively), with size and LFS sha256."""
        from huggingface_hub.hf_api import RepoFile

        with hub_errors(f"{self.repo_id}/{folder}@{self.pinned}", "--repo_id"):
            entries = list(
                self.api.list_repo_tree(
                    self.repo_id,
                    path_in_repo=folder,
                    recursive=True,
                    repo_type="dataset",
                    revision=self.pinned,
                )
            )
        return [
            RemotePart(e.path, int(e.size), e.lfs.sha256 if e.lfs else None)
            for e in entries
            if isinstance(e, RepoFile)
        ]

    def remote_file(self, part: RemotePart) -> RemoteFile:
        """Where and how to download ``part``; checks the Hub's metadata against the listing."""
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        from huggingface_hub.utils import build_hf_headers

        url = hf_hub_url(
            self.repo_id,
            part.path,
            repo_type="dataset",
            revision=self.pinned,
            endpoint=self.endpoint,
        )
        with hub_errors(f"{self.repo_id}/{part.path}@{self.pinned}", "--repo_id"):
            meta = get_hf_file_metadata(url, token=self.token)
        if meta.size is not None and meta.size != part.size:
            raise UserError(
                f"{part.path}: the Hub reports {meta.size} bytes, its listing {part.size}; "
                "the repository changed during the run: run again"
            )
        if self.commit and meta.commit_hash and meta.commit_hash != self.commit:
            raise UserError(
                f"{part.path}: served from commit {meta.commit_hash}, expected {self.commit}"
            )
        headers = build_hf_headers(token=self.token)
        return RemoteFile(url, part.name, part.size, part.sha256, headers=headers)
