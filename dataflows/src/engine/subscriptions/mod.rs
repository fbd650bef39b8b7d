//! PageRank subscriptions: standing PageRanks shared by every subscriber with the same
//! parameters, fed by the changes of the vertex and edge collections.
//!
//! Three parts meet here:
//! - the front's side ([`registry`]): a subscriber joins the topic of its parameters
//!   (creating it if it is the first, up to `max_standing_page_ranks`), reads the current
//!   result, then follows a bounded broadcast; dropping the feed leaves the topic, and the
//!   last one out stops it;
//! - the process's first worker's side ([`hub`]): it notices a new topic, which starts from
//!   the graph read at an LSN after it, and a sink operator on the collections (see
//!   `graph.rs`) hands it every completed LSN's changes;
//! - the subscription thread ([`thread`]): it keeps each topic's [`StandingPageRank`],
//!   applies the changes in LSN order, and shares its time between topics in slices of
//!   bounded work, publishing a topic's ranking whenever its pushes settle and it changed.
//!
//! Every process has all three, so any process serves subscriptions: worker 0 receives
//! every change, and another process's first worker its own process's, and everyone's from
//! the LSN worker 0 orders its first subscription at (`Sequenced::Forward`).
//!
//! Why a thread of its own: a change's pushes then cost the writes nothing (a write is acknowledged when it is applied, not when
//! subscribers have heard of it), and run in one loop with no rounds of progress messages
//! between workers.
//!
//! [`StandingPageRank`]: crate::algorithms::standing_page_rank::StandingPageRank

mod hub;
mod registry;
mod thread;

pub(crate) use hub::Hub;
pub(crate) use registry::Registry;
pub use registry::{FeedError, PageRankFeed, Subscribed};
