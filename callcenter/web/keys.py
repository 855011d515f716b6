"""Typed application keys for everything the app holds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from callcenter.bootstrap import Container

CONTAINER: web.AppKey[Container] = web.AppKey("container")
