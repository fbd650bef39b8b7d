//! SubscribePageRank: the request's parameters checked and defaulted, and a subscription's
//! feed turned into the reply stream, with heartbeats while nothing changes.
//!
//! The stream owns the feed: when the client goes, tonic drops the stream, the feed leaves its
//! topic, and the last subscriber's departure drops the standing PageRank.

use std::sync::Arc;
use std::time::Duration;

use prism_dataflows::{FeedError, PageRankFeed, Subscribed};
use prism_dataflows::{Lsn, Namespace};
use prism_dataflows::{RankUpdate, SubscriptionParams};
use prism_proto::graph::{PageRankUpdate, SubscribePageRankRequest, VertexScore};
use tonic::Status;

use crate::config::Limits;
use crate::status::invalid;
use crate::traversal;

/// The relative error bound of each score when the request leaves `tolerance` at 0.
pub const DEFAULT_TOLERANCE: f64 = 1e-4;

/// The highest damping a subscription may ask for. A push moves rank until every residual
/// is within the tolerance times 1 − damping: near 1 the work per change grows without bound.
pub const MAX_DAMPING: f64 = 0.99;

/// The tightest relative error bound a subscription may ask for, for the same reason.
pub const MIN_TOLERANCE: f64 = 1e-6;

/// Validates a request, naming the field at fault.
pub fn params_from_proto(
    namespace: Namespace,
    message: SubscribePageRankRequest,
    limits: &Limits,
) -> Result<SubscriptionParams, Status> {
    let damping = if message.damping_factor == 0.0 { 0.85 } else { message.damping_factor };
    if !(damping > 0.0 && damping <= MAX_DAMPING) {
        return Err(invalid("damping_factor", format!("must be in (0, {MAX_DAMPING}] (0 means the default 0.85)")));
    }
    let error_bound = if message.tolerance == 0.0 { DEFAULT_TOLERANCE } else { message.tolerance };
    if !(MIN_TOLERANCE..=0.5).contains(&error_bound) {
        return Err(invalid("tolerance", format!("must be in [{MIN_TOLERANCE:e}, 0.5] (0 means the default 1e-4)")));
    }
    if message.top_k < 0 {
        return Err(invalid("top_k", "must not be negative"));
    }
    let top_k = message.top_k as usize;
    if top_k > limits.max_results {
        return Err(Status::resource_exhausted(format!("top_k: {top_k} exceeds max_results ({})", limits.max_results)));
    }
    let filter = message
        .vertex_filter
        .map(|f| traversal::filter_from_proto("vertex_filter", f.labels, &f.property_filters))
        .transpose()?;
    Ok(SubscriptionParams { namespace, damping, error_bound, filter, top_k })
}

fn to_proto(update: &RankUpdate) -> PageRankUpdate {
    PageRankUpdate {
        lsn: update.lsn,
        scores: update
            .scores
            .iter()
            .map(|(id, score)| VertexScore { vertex_id: id.to_string(), score: *score })
            .collect(),
        heartbeat: false,
        error_bound: update.error_bound,
    }
}

fn heartbeat(lsn: Lsn, error_bound: f64) -> PageRankUpdate {
    PageRankUpdate { lsn, scores: Vec::new(), heartbeat: true, error_bound }
}

fn feed_status(error: FeedError) -> Status {
    match error {
        FeedError::Lagged { buffer } => Status::resource_exhausted(format!(
            "subscription_buffer: this subscriber fell more than {buffer} results behind and was cut off; read \
             faster or subscribe again"
        )),
        FeedError::Behind(reason) => Status::resource_exhausted(reason),
        FeedError::Closed(reason) => Status::unavailable(format!("the PageRank subscription ended: {reason}")),
    }
}

enum Next {
    First(Arc<RankUpdate>, PageRankFeed),
    Follow(PageRankFeed),
    Done,
}

pub type PageRankStream = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<PageRankUpdate, Status>> + Send>>;

/// The reply stream: the first result, then each change, or a heartbeat after `every` without
/// one; a feed error ends it with its status.
pub fn stream(subscribed: Subscribed, every: Duration) -> PageRankStream {
    let start = Next::First(subscribed.first, subscribed.feed);
    Box::pin(futures::stream::unfold(start, move |state| async move {
        let mut feed = match state {
            Next::Done => return None,
            Next::First(first, feed) => return Some((Ok(to_proto(&first)), Next::Follow(feed))),
            Next::Follow(feed) => feed,
        };
        let item = match tokio::time::timeout(every, feed.next()).await {
            Ok(result) => result.map(|update| to_proto(&update)),
            Err(_) => {
                // Read the LSN before looking for a result: one published up to it is
                // already in the feed, so the heartbeat cannot claim past an unsent change.
                let lsn = feed.processed_lsn();
                match feed.try_next() {
                    Ok(Some(update)) => Ok(to_proto(&update)),
                    Ok(None) => Ok(heartbeat(lsn, feed.error_bound())),
                    Err(error) => Err(error),
                }
            }
        };
        match item {
            Ok(message) => Some((Ok(message), Next::Follow(feed))),
            Err(error) => Some((Err(feed_status(error)), Next::Done)),
        }
    }))
}
