//! The node's incoming traffic: each message kind is handed to the concern that owns it.

use super::Node;
use crate::wire::NodeMsg;

impl Node {
    /// Handles one message from rank `src` (on the communication thread).
    pub(crate) fn handle(&self, src: u32, msg: NodeMsg) {
        tracing::trace!(src, ?msg, "handle");
        self.observe_receive(src, &msg);
        match msg {
            NodeMsg::Task {
                seq,
                func,
                args,
                outputs,
            } => self.receive_task(src, seq, func, args, outputs),
            NodeMsg::ActorCreate {
                actor,
                class,
                args,
                seq,
            } => self.receive_actor_create(src, seq, actor, class, args),
            NodeMsg::ActorCall {
                actor,
                method,
                args,
                outputs,
                seq,
            } => self.receive_actor_call(src, seq, actor, method, args, outputs),
            NodeMsg::ActorKill { actor, now } => self.with(|s, e| self.kill_here(s, e, actor, now)),
            NodeMsg::ActorLocate { actor } => {
                self.with(|s, e| self.answer_locate(s, e, src, actor))
            }
            NodeMsg::ActorWhere { actor, worker } => {
                self.with(|s, e| self.located(s, e, actor, worker))
            }
            NodeMsg::ActorPin { actor } => self.with(|s, _| self.pin_actor(s, actor)),
            NodeMsg::Done { seq, results } => {
                self.with(|s, e| self.call_done(s, e, src, seq, results))
            }
            NodeMsg::Push { id, value } => self.value_arrived(src, id, value, true),
            NodeMsg::Data { id, value } => self.value_arrived(src, id, value, false),
            NodeMsg::Failed { id, error } => {
                self.with(|s, e| self.failure_arrived(s, e, id, error))
            }
            NodeMsg::Fetch { id, requester } => self.with(|s, e| self.fetch(s, e, id, requester)),
            NodeMsg::Subscribe { id } => self.with(|s, e| self.subscribe(s, e, src, id)),
            NodeMsg::Ready { id, loc, error } => {
                self.with(|s, e| self.readiness(s, e, id, loc, error))
            }
            NodeMsg::Free { ids } => self.with(|s, e| self.free_here(s, e, &ids)),
            NodeMsg::Borrow { id, delta } => self.with(|s, e| self.borrow(s, e, id, delta)),
            NodeMsg::Shared { id, push, seg } => self.shared_arrived(src, id, push, seg),
            NodeMsg::PeerRead { id, desc } => self.peer_read_arrived(src, id, desc),
            NodeMsg::PeerReadOff => self.store.peer_reads_off(),
            m @ (NodeMsg::Flow { .. }
            | NodeMsg::ClockPing { .. }
            | NodeMsg::ClockPong { .. }
            | NodeMsg::StatsAsk { .. }
            | NodeMsg::StatsReply { .. }
            | NodeMsg::TraceAsk { .. }
            | NodeMsg::TraceReply { .. }
            | NodeMsg::RecordSwitch { .. }
            | NodeMsg::RecordSwitched { .. }) => self.observe_message(src, m),
            NodeMsg::TaskWith {
                seq,
                func,
                args,
                outputs,
                options,
            } => self.receive_task_with(src, seq, func, args, outputs, options),
            NodeMsg::Cancel { seq } => self.with(|s, e| self.cancel_here(s, e, src, seq)),
            NodeMsg::CancelRef { id } => self.with(|s, e| self.cancel_owned(s, e, id)),
        }
    }
}
