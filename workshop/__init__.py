"""Prompt evaluation workshop: the chapter 7 seed as a tested library and pytest suite."""

from workshop.analysis import Analysis, analyse
from workshop.contract import Contract, Verdict, load_contract, parse_output, validate_output
from workshop.errors import EvidenceError, FixtureError, Problem, WorkshopError
from workshop.evaluation import EvalResult, VersionScore, best_version, evaluate, evaluate_all, judge, score_versions
from workshop.evidence import ReadmeInfo, render_pack, write_pack
from workshop.fake_model import FakeModel, infer_intent
from workshop.fixtures import Case, Fixtures, PromptVersion, load_fixtures
from workshop.model import Completion, Model, ProviderError
from workshop.payload import Payload, build_payload
from workshop.routes import RouteDecision, decide_routes, solution_route
from workshop.tokens import PaddedBatch, TokenTrace, pad_batch, tiny_embedding, token_id, tokenize, trace_text

__version__ = "0.1.0"

__all__ = [
    "Analysis",
    "Case",
    "Completion",
    "Contract",
    "EvalResult",
    "EvidenceError",
    "FakeModel",
    "FixtureError",
    "Fixtures",
    "Model",
    "PaddedBatch",
    "Payload",
    "Problem",
    "PromptVersion",
    "ProviderError",
    "ReadmeInfo",
    "RouteDecision",
    "TokenTrace",
    "Verdict",
    "VersionScore",
    "WorkshopError",
    "analyse",
    "best_version",
    "build_payload",
    "decide_routes",
    "evaluate",
    "evaluate_all",
    "infer_intent",
    "judge",
    "load_contract",
    "load_fixtures",
    "pad_batch",
    "parse_output",
    "render_pack",
    "score_versions",
    "solution_route",
    "tiny_embedding",
    "token_id",
    "tokenize",
    "trace_text",
    "validate_output",
    "write_pack",
]
