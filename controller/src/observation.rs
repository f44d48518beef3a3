//! The observation side of the controller: agents' flows into the service
//! graph, baselines and storage, and the review workflow that turns the
//! baselines into policies.

pub mod flows;
pub mod review;
pub mod storage;
