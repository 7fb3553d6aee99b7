"""Business rules in CEL: compiled at registration, evaluated with payload fields and `payload`."""

from __future__ import annotations

import pytest

from esb.errors import ExpressionError
from esb.schemas import BusinessRule, compile_rules, evaluate_rules

SEED_RULE_IN_CEL = (
    "profile_data.email.endsWith('@company.com') || profile_data.email.endsWith('@partner.com')"
)


def test_seed_python_syntax_rule_does_not_compile() -> None:
    rule = BusinessRule(name="valid_email_domain",
                        rule="profile_data.email.endswith(('@company.com', '@partner.com'))")
    with pytest.raises(ExpressionError, match="valid_email_domain"):
        compile_rules([rule])


@pytest.mark.parametrize(("email", "ok"), [
    ("a@company.com", True), ("b@partner.com", True), ("c@gmail.com", False)])
def test_seed_rule_in_cel(email: str, ok: bool) -> None:
    rule = BusinessRule(name="valid_email_domain",
                        description="Email must be from approved domains", rule=SEED_RULE_IN_CEL)
    errors = evaluate_rules([rule], {"profile_data": {"email": email}})
    assert (errors == []) is ok
    if not ok:
        assert errors[0].model_dump() == {
            "path": "$", "rule": "valid_email_domain",
            "message": "Email must be from approved domains"}


def test_rule_without_description_reports_the_expression() -> None:
    rule = BusinessRule(name="minimum_order_value", rule="order_total >= 10.0")
    assert evaluate_rules([rule], {"order_total": 25.99}) == []
    [error] = evaluate_rules([rule], {"order_total": 5.0})
    assert error.message == "order_total >= 10.0"


def test_whole_payload_is_available_as_payload() -> None:
    rule = BusinessRule(name="has_currency", rule="has(payload.currency) && size(payload) == 2")
    assert evaluate_rules([rule], {"currency": "USD", "x": 1}) == []
    assert len(evaluate_rules([rule], {"x": 1, "y": 2})) == 1


def test_missing_field_fails_the_rule_instead_of_raising() -> None:
    rule = BusinessRule(name="min", rule="order_total >= 10.0")
    [error] = evaluate_rules([rule], {"other": 1})
    assert error.rule == "min"
    assert "could not be evaluated" in error.message


def test_non_boolean_rule_is_an_error() -> None:
    [error] = evaluate_rules([BusinessRule(name="n", rule="1 + 1")], {})
    assert error.rule == "n"


def test_duplicate_rule_names_rejected() -> None:
    rules = [BusinessRule(name="r", rule="true"), BusinessRule(name="r", rule="false")]
    with pytest.raises(ExpressionError, match="duplicate"):
        compile_rules(rules)
