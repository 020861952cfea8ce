"""Run outcomes as ops and monitoring are told them: circuit_open is now breaker_open,
clock_skew is blocked (by the clock gate, kept in blocked_by); over_budget and blocked
are new. Reversible: back, a blocked run by the clock is clock_skew again, and the runs the
old code recorded as ok (blocked by IB or the bridge root, over budget) are ok again."""

from django.db import migrations, models

RENAMED = {"circuit_open": "breaker_open"}
CLOCK_SKEW = "clock_skew"


def outcomes_forward(apps, schema_editor):  # noqa: ANN001, ANN201
    SweepRun = apps.get_model("recovery", "SweepRun")
    runs = SweepRun.objects.using(schema_editor.connection.alias)
    for old, new in RENAMED.items():
        runs.filter(outcome=old).update(outcome=new)
    runs.filter(outcome=CLOCK_SKEW).update(outcome="blocked", blocked_by=CLOCK_SKEW)


def outcomes_backward(apps, schema_editor):  # noqa: ANN001, ANN201
    SweepRun = apps.get_model("recovery", "SweepRun")
    runs = SweepRun.objects.using(schema_editor.connection.alias)
    for old, new in RENAMED.items():
        runs.filter(outcome=new).update(outcome=old)
    runs.filter(outcome="blocked", blocked_by=CLOCK_SKEW).update(outcome=CLOCK_SKEW)
    runs.filter(outcome__in=["blocked", "over_budget"]).update(outcome="ok")


class Migration(migrations.Migration):
    dependencies = [
        ("recovery", "0004_sweep_run_clock_skew"),
    ]

    operations = [
        migrations.AddField(
            model_name="sweeprun",
            name="blocked_by",
            field=models.CharField(blank=True, db_default="", default="", max_length=32),
        ),
        migrations.AlterField(
            model_name="sweeprun",
            name="outcome",
            field=models.CharField(
                choices=[
                    ("ok", "ok"),
                    ("blocked", "blocked: a sweep-wide gate kept it from acting"),
                    ("breaker_open", "circuit breaker open: nothing changed"),
                    ("over_budget", "over its time budget: orders left for the next run"),
                    ("failed", "failed: an order could not be written"),
                    ("connection_lost", "lost the database mid-sweep"),
                    ("could_not_run", "could not run"),
                    ("lock_held", "another run held the lock"),
                ],
                max_length=16,
            ),
        ),
        migrations.RunPython(outcomes_forward, outcomes_backward),
    ]
