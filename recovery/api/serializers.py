"""What a sweep request may say, checked strictly: a typo must not turn a dry run into a real one."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

MAX_ORDER_IDS = 500  # as many as the admin's recovery of selected orders takes
MAX_ORDER_ID = 2_147_483_647  # trade_orders.id is INT: a larger id names no order
MAX_LIMIT = 100_000  # auto_recover --limit's range
DEFAULT_LIMIT = 200
MSG_UNKNOWN_FIELDS = "unknown field(s): {names}; allowed: dry_run, limit, order_ids, confirmed_replacements"
MSG_NOT_BOOL = "must be true or false"
MSG_NOT_INT = "must be a whole JSON number"
MSG_CONFIRM_NEEDS_IDS = "only a recovery of selected orders (order_ids) may pass the circuit breaker"


class StrictBooleanField(serializers.BooleanField):
    """Only JSON true/false: "false" or 0 are refused rather than guessed."""

    def to_internal_value(self, data: Any) -> bool:
        if type(data) is not bool:
            self.fail("strict")
        return data

    default_error_messages = {"strict": MSG_NOT_BOOL}


class StrictIntegerField(serializers.IntegerField):
    """Only JSON integers: not true, not 5.0, not "5"."""

    default_error_messages = {"strict": MSG_NOT_INT}

    def to_internal_value(self, data: Any) -> int:
        if type(data) is not int:
            self.fail("strict")
        return super().to_internal_value(data)


class SweepRequestSerializer(serializers.Serializer):
    dry_run = StrictBooleanField(default=False, help_text="decide and report; write nothing")
    limit = StrictIntegerField(
        min_value=1, max_value=MAX_LIMIT, default=DEFAULT_LIMIT, help_text="orders per run, oldest first"
    )
    order_ids = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=MAX_ORDER_ID),
        min_length=1,
        max_length=MAX_ORDER_IDS,
        required=False,
        help_text="recover only these orders (the admin's recovery of selected orders)",
    )
    confirmed_replacements = StrictIntegerField(
        min_value=1,
        required=False,
        help_text="with order_ids: pass an open circuit breaker when exactly this many would be re-placed",
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {"non_field_errors": [MSG_UNKNOWN_FIELDS.format(names=", ".join(unknown))]}
                )
        return super().to_internal_value(data)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "confirmed_replacements" in attrs and "order_ids" not in attrs:
            raise serializers.ValidationError({"confirmed_replacements": [MSG_CONFIRM_NEEDS_IDS]})
        return attrs
