//! Where the crash test's kills land.

use super::tap::Trigger;

/// Where kills land.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum KillPoint {
    Enqueue,
    PushBeforeApply,
    PushAfterApply,
    PushAnswered,
    MidPull,
    PageAnswered,
    Random,
}

pub(super) const KILL_POINTS: [KillPoint; 7] = [
    KillPoint::Enqueue,
    KillPoint::PushBeforeApply,
    KillPoint::PushAfterApply,
    KillPoint::PushAnswered,
    KillPoint::MidPull,
    KillPoint::PageAnswered,
    KillPoint::Random,
];

impl KillPoint {
    pub(super) fn name(self) -> &'static str {
        match self {
            KillPoint::Enqueue => "enqueue",
            KillPoint::PushBeforeApply => "push_before_apply",
            KillPoint::PushAfterApply => "push_after_apply",
            KillPoint::PushAnswered => "push_answered",
            KillPoint::MidPull => "mid_pull",
            KillPoint::PageAnswered => "page_answered",
            KillPoint::Random => "random",
        }
    }

    pub(super) fn trigger(self) -> Option<Trigger> {
        match self {
            KillPoint::PushBeforeApply => Some(Trigger::PushBeforeApply),
            KillPoint::PushAfterApply => Some(Trigger::PushAfterApply),
            KillPoint::PushAnswered => Some(Trigger::PushAnswered),
            KillPoint::MidPull => Some(Trigger::MidPull),
            KillPoint::PageAnswered => Some(Trigger::PageAnswered),
            KillPoint::Enqueue | KillPoint::Random => None,
        }
    }
}
