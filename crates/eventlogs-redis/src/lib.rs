//! Redis `ReductionCache` for eventlogs.
