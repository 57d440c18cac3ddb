"""Deterministic demo CRM generator: a mid-market sales org with planted, labelled risks.

    from connectors.demo import generate_demo_crm, verify_ground_truth
    manifest = generate_demo_crm(Path("var/demo_crm/seed7_scale1"), seed=7, scale=1)
    assert verify_ground_truth(Path("var/demo_crm/seed7_scale1")) == []
"""

from connectors.demo.generator import GROUND_TRUTH_COLUMNS, OUTPUT_FILES, generate_demo_crm
from connectors.demo.params import OPPORTUNITY_RISKS, REP_RISKS, RISK_DEFINITIONS, SEGMENT_NAMES, STAGES
from connectors.demo.verify import verify_ground_truth

__all__ = [
    "GROUND_TRUTH_COLUMNS",
    "OPPORTUNITY_RISKS",
    "OUTPUT_FILES",
    "REP_RISKS",
    "RISK_DEFINITIONS",
    "SEGMENT_NAMES",
    "STAGES",
    "generate_demo_crm",
    "verify_ground_truth",
]
