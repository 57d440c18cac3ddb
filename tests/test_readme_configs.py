"""The connector configuration examples in the README load into each connector's config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from connectors.hubspot.config import HubSpotConfig
from connectors.pipedrive.config import PipedriveConfig
from connectors.salesforce.config import SalesforceConfig

README = Path(__file__).resolve().parents[1] / "README.md"
CONFIGS = {"HUBSPOT_CONFIG": HubSpotConfig, "SALESFORCE_CONFIG": SalesforceConfig, "PIPEDRIVE_CONFIG": PipedriveConfig}


def _examples() -> dict[str, str]:
    blocks = re.findall(r"```yaml\n(# (\w+_CONFIG)=.*?)```", README.read_text(), flags=re.S)
    return {name: text for text, name in blocks}


def test_every_connector_has_a_readme_example():
    assert set(_examples()) == set(CONFIGS)


@pytest.mark.parametrize("env_name", sorted(CONFIGS))
def test_readme_example_is_a_valid_config(env_name):
    data = yaml.safe_load(_examples()[env_name])
    assert data, env_name
    config = CONFIGS[env_name].model_validate(data)  # extra keys are forbidden: a typo fails here
    for key in data:
        assert getattr(config, key) is not None or data[key] is None, key
