"""Series spacing: where a client stands in a treatment plan and when the next visit is due.

A visit is a calendar day: several areas treated on one day (one session each) are one visit, so
they count once and never warn against each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class Plan:
    id: int
    client_id: str
    indication: str
    sessions: int
    interval_weeks: int
    maintenance_weeks: int | None
    created_at: str

    def describe(self) -> str:
        text = f"{self.sessions} sessions every {self.interval_weeks} weeks"
        if self.maintenance_weeks:
            text += f", then maintenance every {self.maintenance_weeks} weeks"
        return text


@dataclass(frozen=True)
class PlanStatus:
    plan: Plan
    visits_done: int
    last_visit: date | None
    phase: str  # 'series' | 'maintenance' | 'complete'
    next_number: int | None  # the number of the next series visit, None after the series
    due_from: date | None  # None: any time (first visit) or nothing due (complete)

    def describe(self, today: date | None = None) -> str:
        done = f"{min(self.visits_done, self.plan.sessions)} of {self.plan.sessions} done"
        if self.last_visit:
            done += f", last {self.last_visit.isoformat()}"
        if self.phase == "complete":
            return f"{done}; series complete, no maintenance planned"
        what = (
            f"session {self.next_number} of {self.plan.sessions}"
            if self.phase == "series"
            else "maintenance session"
        )
        if self.due_from is None:
            return f"{done}; next: {what}, any time"
        when = f"due from {self.due_from.isoformat()}"
        if today is not None:
            delta = (self.due_from - today).days
            if delta > 0:
                when += f" (in {delta} days)"
            elif delta < 0:
                when += f" (overdue by {-delta} days)"
            else:
                when += " (due today)"
        return f"{done}; next: {what}, {when}"


def visit_days(session_days: list[date]) -> list[date]:
    return sorted(set(session_days))


def plan_status(plan: Plan, plan_days: list[date], all_days: list[date]) -> PlanStatus:
    """Where a client stands: `plan_days` are the days of sessions given under this plan,
    `all_days` those of every session of the client for the plan's indication."""
    done = len(visit_days(plan_days))
    days = visit_days(all_days)
    last = days[-1] if days else None
    if done < plan.sessions:
        phase, number, weeks = "series", done + 1, plan.interval_weeks
    elif plan.maintenance_weeks:
        phase, number, weeks = "maintenance", None, plan.maintenance_weeks
    else:
        return PlanStatus(plan, done, last, "complete", None, None)
    due = last + timedelta(weeks=weeks) if last is not None else None
    return PlanStatus(plan, done, last, phase, number, due)


@dataclass(frozen=True)
class SpacingCheck:
    previous_visit: date | None
    due_from: date | None
    days_early: int  # > 0 when the new visit comes earlier than the plan allows
    status: PlanStatus

    @property
    def early(self) -> bool:
        return self.days_early > 0


def check_spacing(
    plan: Plan, plan_days: list[date], all_days: list[date], when: date
) -> SpacingCheck:
    """Check a visit on `when` against the plan, counting only the visits before that day."""
    before_plan = [d for d in plan_days if d < when]
    before_all = [d for d in all_days if d < when]
    status = plan_status(plan, before_plan, before_all)
    previous = status.last_visit
    if previous is None:
        return SpacingCheck(None, None, 0, status)
    # After a complete series without maintenance, the series interval still spaces visits.
    weeks = plan.maintenance_weeks if status.phase == "maintenance" else plan.interval_weeks
    due = previous + timedelta(weeks=weeks)
    return SpacingCheck(previous, due, max(0, (due - when).days), status)
