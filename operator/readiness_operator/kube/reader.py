"""Our own paginated LIST + WATCH of the big kinds: every object is trimmed as it arrives.

kopf keeps each watched object whole until its index handler has run, plus a worker per object,
which at 10,000 Deployments and their pods costs hundreds of MB at start-up (docs/benchmarks.md).
Here each kind is listed 500 objects a page; a page is parsed, each object reduced to what the
engine reads (`objects.py`), and the page dropped, so no more than one page is ever held whole.
Then one WATCH per kind from the list's resourceVersion applies each event the same way; a watch
that expires (410 Gone) or a failed request starts a fresh LIST, diffed against what is kept so
every change in between is still seen.

What is kept has the shape of a kopf index (key -> values of the objects under that key), so the
policy loops and the webhook read it through the same `IndexView`. After the first LIST of every
kind, each change that alters what is kept of an object calls its kind's `on_change` (the dirty
marks of the policy loops); an event that changes nothing we keep (a status heartbeat, a
resourceVersion bump) costs no pass.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote

import aiohttp

log = logging.getLogger(__name__)

ObjectKey = tuple[str, str]  # (namespace, name)
Entries = dict[Any, Any]  # index key -> the value an object keeps under it
Extract = Callable[[Mapping[str, Any]], Entries]
Share = Callable[[Entries], Entries]  # freshly extracted entries -> the same, made of shared subtrees
OnChange = Callable[[str, str, Entries], None]  # namespace, name, what is kept of it; called again with what
#                                                  it replaced (and only with that when it was deleted)

PAGE_SIZE = 500
WATCH_SECONDS = 300  # the API server ends a watch after this; we start the next one from the last version
YIELD_EVERY = 100  # objects trimmed between two yields to the event loop during a LIST


class KindCounts(NamedTuple):
    kept: int  # objects
    relists: int  # fresh LISTs after a watch expired (410)
    events: int  # watch events applied
    changes: int  # watch events that changed what is kept


class Gone(Exception):
    """The resourceVersion we watch from is too old (410): only a fresh LIST can continue."""


class Index(Mapping[Any, Iterable[Any]]):
    """Key -> the values of the objects kept under it, like a kopf index (its stores are live)."""

    def __init__(self, revisions: bool = False) -> None:
        self._entries: dict[Any, dict[ObjectKey, Any]] = {}
        self._keys_of: dict[ObjectKey, tuple[Any, ...]] = {}  # keys, not a dict per object: 50,000 of them
        # With ``revisions``: per key, when its values last changed (a clock over this index, never
        # reused, so a key removed and added again has a new revision). What is derived from a key's
        # values, like a namespace's `RelatedIndex`, is kept until its key's revision moves.
        self._revisions: dict[Any, int] | None = {} if revisions else None
        self._clock = 0

    def __getitem__(self, key: Any) -> Iterable[Any]:
        return self._entries[key].values()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    @property
    def objects(self) -> int:
        return len(self._keys_of)

    def value(self, key: Any, obj: ObjectKey) -> Any:
        """What `obj` keeps under `key` (None: nothing), without walking the key's values."""
        values = self._entries.get(key)
        return None if values is None else values.get(obj)

    def revision(self, key: Any) -> int | None:
        """When `key`'s values last changed (0: no value kept under it; None: not tracked)."""
        return None if self._revisions is None else self._revisions.get(key, 0)

    def _touch(self, key: Any) -> None:
        if self._revisions is None:
            return
        self._clock += 1
        if key in self._entries:
            self._revisions[key] = self._clock
        else:
            self._revisions.pop(key, None)

    def entries_of(self, obj: ObjectKey) -> Entries | None:
        keys = self._keys_of.get(obj)
        return None if keys is None else {key: self._entries[key][obj] for key in keys}

    def object_keys(self) -> list[ObjectKey]:
        return list(self._keys_of)

    def put(self, obj: ObjectKey, entries: Entries) -> bool:
        """Keep an object's entries; False when they equal what was kept (nothing changed for us)."""
        old = self.entries_of(obj)
        if old is not None and old == entries:
            return False
        if old is not None:
            self.discard(obj)
        if entries:
            self._keys_of[obj] = tuple(entries)
            for key, value in entries.items():
                self._entries.setdefault(key, {})[obj] = value
                self._touch(key)
        return old is not None or bool(entries)

    def discard(self, obj: ObjectKey) -> bool:
        keys = self._keys_of.pop(obj, None)
        if keys is None:
            return False
        for key in keys:
            values = self._entries.get(key)
            if values is not None:
                values.pop(obj, None)
                if not values:
                    del self._entries[key]
                self._touch(key)
        return True


@dataclass
class Kind:
    """One watched kind: where it is served, what is kept of each object, who hears of changes."""

    name: str  # plural, for logs and metrics
    group_version: str  # "v1" or "apps/v1"
    extract: Extract
    on_change: OnChange | None = None
    index: Index = field(default_factory=Index)
    # Applied only to entries that differ from what is kept: most watch events (status heartbeats)
    # change nothing we keep and are dropped after one comparison, without the sharing walk.
    share: Share | None = None
    events: int = 0  # watch events applied
    changes: int = 0  # of which changed what is kept

    def path(self, namespace: str | None) -> str:
        base = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        return f"{base}/namespaces/{quote(namespace)}/{self.name}" if namespace else f"{base}/{self.name}"


@dataclass
class Connection:
    """How to reach the API server: what the `kubernetes` client was configured with."""

    host: str
    ssl_context: ssl.SSLContext | bool
    headers: Callable[[], dict[str, str]]  # called per request: a refreshed token is picked up

    @classmethod
    def from_client(cls, client: Any) -> Connection:
        cfg = client.configuration
        context: ssl.SSLContext | bool = False
        if cfg.host.startswith("https"):
            context = ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.verify_ssl else ssl._create_unverified_context()
            if cfg.cert_file:
                context.load_cert_chain(cfg.cert_file, cfg.key_file)

        def headers() -> dict[str, str]:
            out = {"Accept": "application/json"}
            for auth in cfg.auth_settings().values():
                if auth.get("in") == "header" and auth.get("value"):
                    out[auth["key"]] = auth["value"]
            return out

        return cls(cfg.host.rstrip("/"), context, headers)


class ClusterReader:
    """One LIST+WATCH task per kind (per namespace when the operator watches namespaces)."""

    def __init__(self, kinds: Iterable[Kind], namespaces: Iterable[str] = (), retry: float = 1.0,
                 max_retry: float = 30.0, page_size: int = PAGE_SIZE) -> None:
        self.kinds = {kind.name: kind for kind in kinds}
        self.namespaces: tuple[str | None, ...] = tuple(namespaces) or (None,)
        self._retry, self._max_retry, self._page_size = retry, max_retry, page_size
        self._pending = {(kind, ns) for kind in self.kinds for ns in self.namespaces}
        self.synced = asyncio.Event()  # every kind listed once: what is kept is the whole cluster
        self.relists = {kind: 0 for kind in self.kinds}

    def counts(self) -> dict[str, KindCounts]:
        """Per kind: objects kept, fresh LISTs after a watch expired, watch events and changes (for /metrics)."""
        return {name: KindCounts(kind.index.objects, self.relists[name], kind.events, kind.changes)
                for name, kind in self.kinds.items()}

    def index(self, kind: str) -> Index:
        return self.kinds[kind].index

    async def wait_synced(self) -> None:
        await self.synced.wait()

    async def run(self, connection: Connection) -> None:
        """Until cancelled."""
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=connection.ssl_context)) as session:
            tasks = [asyncio.create_task(self._follow(session, connection, kind, ns), name=f"reader:{kind.name}:{ns}")
                     for kind in self.kinds.values() for ns in self.namespaces]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow(self, session: aiohttp.ClientSession, connection: Connection, kind: Kind,
                      namespace: str | None) -> None:
        version: str | None = None
        delay = self._retry
        while True:
            try:
                if version is None:
                    version = await self._list(session, connection, kind, namespace)
                    self._listed(kind.name, namespace)
                version = await self._watch(session, connection, kind, namespace, version)
                delay = self._retry
            except asyncio.CancelledError:
                raise
            except Gone:
                log.info("watch of %s expired (410): listing again", kind.name)
                version = None
                self.relists[kind.name] += 1
            except Exception as exc:  # API trouble: keep what we have, retry, relist if the version is gone
                log.warning("reading %s failed (retrying in %.0fs): %s", kind.name, delay, _short(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_retry)

    def _listed(self, kind: str, namespace: str | None) -> None:
        self._pending.discard((kind, namespace))
        if not self._pending and not self.synced.is_set():
            log.info("read the cluster: %s", ", ".join(f"{k.index.objects} {k.name}" for k in self.kinds.values()))
            self.synced.set()

    async def _list(self, session: aiohttp.ClientSession, connection: Connection, kind: Kind,
                    namespace: str | None) -> str:
        """A paginated LIST; returns its resourceVersion. Objects kept before and absent now are
        deleted, and every difference is reported (after the first sync)."""
        url = connection.host + kind.path(namespace)
        seen: set[ObjectKey] = set()
        params: dict[str, str] = {"limit": str(self._page_size)}
        version = ""
        while True:
            async with session.get(url, params=params, headers=connection.headers()) as response:
                if response.status == 410:  # the continue token expired: start over
                    params.pop("continue", None)
                    seen.clear()
                    continue
                await _raise_for(response)
                page = json.loads(await response.read())
            meta = page.get("metadata") or {}
            version = version or str(meta.get("resourceVersion") or "")
            for i, obj in enumerate(page.get("items") or ()):
                if i and i % YIELD_EVERY == 0:  # trimming a page of pods takes a while: let the webhook answer
                    await asyncio.sleep(0)
                seen.add(self._apply(kind, obj, deleted=False)[0])
            del page
            token = meta.get("continue")
            if not token:
                break
            params["continue"] = str(token)
        for gone in set(kind.index.object_keys()) - seen:
            self._vanish(kind, gone)
        return version

    async def _watch(self, session: aiohttp.ClientSession, connection: Connection, kind: Kind,
                     namespace: str | None, version: str) -> str:
        """One WATCH from `version` until the server ends it; returns the last version seen."""
        url = connection.host + kind.path(namespace)
        params = {"watch": "true", "resourceVersion": version, "allowWatchBookmarks": "true",
                  "timeoutSeconds": str(WATCH_SECONDS)}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=WATCH_SECONDS + 30)
        async with session.get(url, params=params, headers=connection.headers(), timeout=timeout) as response:
            if response.status == 410:
                raise Gone
            await _raise_for(response)
            buffer = bytearray()
            async for chunk in response.content.iter_any():
                buffer += chunk
                start = 0
                while (end := buffer.find(b"\n", start)) >= 0:
                    line = bytes(buffer[start:end])
                    start = end + 1
                    if line.strip():
                        version = self._event(kind, json.loads(line), version)
                del buffer[:start]
        return version

    def _event(self, kind: Kind, event: Mapping[str, Any], version: str) -> str:
        kind_of_event, obj = event.get("type"), event.get("object") or {}
        if kind_of_event == "ERROR":
            if obj.get("code") == 410:
                raise Gone
            raise RuntimeError(f"watch error {obj.get('code')}: {str(obj.get('message'))[:200]}")
        new_version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
        if kind_of_event in ("ADDED", "MODIFIED", "DELETED"):
            kind.events += 1
            if self._apply(kind, obj, deleted=kind_of_event == "DELETED")[1]:
                kind.changes += 1
        return new_version

    def _apply(self, kind: Kind, obj: Mapping[str, Any], deleted: bool) -> tuple[ObjectKey, bool]:
        """Keep (or drop) one object; returns its key and whether what is kept changed."""
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        old = kind.index.entries_of(key)
        if deleted:
            kept = old
            changed = kind.index.discard(key)
        else:
            new = kind.extract(obj)
            if old is not None and old == new:
                return key, False
            if kind.share is not None and new:
                new = kind.share(new)
            kept = new or old
            changed = kind.index.put(key, new)
        if changed and self.synced.is_set() and kind.on_change is not None:
            kind.on_change(key[0], key[1], kept or {})
            if old and kept is not old:  # what it replaced too: an HPA retargeted marks both Deployments
                kind.on_change(key[0], key[1], old)
        return key, changed

    def _vanish(self, kind: Kind, key: ObjectKey) -> None:
        """An object deleted while we were not watching (seen by a LIST)."""
        old = kind.index.entries_of(key)
        if kind.index.discard(key) and self.synced.is_set() and kind.on_change is not None:
            kind.on_change(key[0], key[1], old or {})


async def _raise_for(response: aiohttp.ClientResponse) -> None:
    if response.status >= 400:
        text = (await response.text())[:300]
        raise RuntimeError(f"{response.method} {response.url.path}: HTTP {response.status}: {text}")


def _short(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:300]
