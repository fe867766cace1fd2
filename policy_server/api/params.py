"""Parameters and dependencies shared by the API's controllers."""

from __future__ import annotations

from typing import Annotated

from litestar.di import NamedDependency
from litestar.openapi.spec import Example
from litestar.params import PathParameter

from policy_server.settings import Settings
from policy_server.store import Database, StateStore

StateStoreDep = NamedDependency[StateStore]
DatabaseDep = NamedDependency[Database]
SettingsDep = NamedDependency[Settings]

Namespace = Annotated[
    str, PathParameter(description="Namespace (Kargo project).", examples=[Example(value="kargo-demo")])
]
