"""Where the dashboard finds the API (the sidebar, then ``st.secrets["api_url"]``, then ``REC_API_URL``) and how
it authenticates (``REC_API_AUTH``: none, or iam for SigV4-signed calls).

The environment variable names live in ``reccore.settings`` with every other one. The
``reccore`` package depends on numpy, faiss and boto3, which the dashboard never uses,
so ``frontend/requirements.txt`` does not install it; ``reccore.settings`` itself needs
only pydantic-settings, so when the package is not installed it is imported from the
source tree next to this folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import streamlit as st

from sigv4 import IamAuth

try:
    from reccore.settings import get_frontend_settings
except ModuleNotFoundError:  # a lean, frontend-only environment
    sys.path.append(str(Path(__file__).resolve().parent.parent / "layers" / "reccore"))
    from reccore.settings import get_frontend_settings

SECRET_API_URL = "api_url"


def default_api_url() -> str:
    """The API URL before any sidebar edit: ``st.secrets["api_url"]`` if set, else ``REC_API_URL``."""
    # st.secrets is looked up on each call: AppTest swaps the object in for its tests.
    if st.secrets.load_if_toml_exists() and st.secrets.get(SECRET_API_URL):
        return str(st.secrets[SECRET_API_URL])
    return get_frontend_settings().api_url


def api_timeout() -> float:
    """Seconds before an API call is abandoned (``REC_API_TIMEOUT``)."""
    return get_frontend_settings().api_timeout


def request_auth() -> httpx.Auth | None:
    """The auth flow every API call goes through: SigV4 signing when ``REC_API_AUTH=iam``, else none."""
    settings = get_frontend_settings()
    if settings.api_auth == "iam":
        return IamAuth(region=settings.aws_region)
    return None
