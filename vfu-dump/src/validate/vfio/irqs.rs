//! Interrupts: DEVICE_GET_IRQ_INFO and DEVICE_SET_IRQS.

use vfu_codec::vfio::device::{
    IrqInfo, IrqSet, VFIO_DEVICE_FLAGS_PCI, VFIO_IRQ_SET_ACTION_TRIGGER,
    VFIO_IRQ_SET_ACTION_TYPE_MASK, VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_EVENTFD,
    VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_TYPE_MASK,
};
use vfu_codec::{Command, HEADER_SIZE};

use crate::validate::finding::Sink;
use crate::validate::rules::Rule;
use crate::validate::types::Event;

use super::{Conn, Ctx, IRQ_ERR, IRQ_REQ, PCI_NUM_IRQS};

impl Conn {
    pub(super) fn irq_count(&self, index: u32) -> Option<u32> {
        self.irqs.iter().find(|i| i.0 == index).map(|i| i.1)
    }

    pub(super) fn num_irqs(&self) -> u32 {
        self.device.map_or(PCI_NUM_IRQS, |d| d.num_irqs)
    }

    pub(super) fn is_pci(&self) -> bool {
        self.device
            .is_none_or(|d| d.flags & VFIO_DEVICE_FLAGS_PCI != 0)
    }

    pub(super) fn irq_index(&self, index: u32, at: usize, sink: &mut Sink<'_>) -> bool {
        let n = self.num_irqs();
        if index >= n {
            let whence = if self.device.is_some() {
                "num_irqs from DEVICE_GET_INFO"
            } else {
                "the PCI IRQ index count"
            };
            sink.emit(
                Rule::IrqIndex,
                at,
                format_args!("IRQ index {index} is not below {n}, {whence}"),
            );
            return false;
        }
        true
    }

    pub(super) fn req_irq_info(&mut self, i: &IrqInfo, sink: &mut Sink<'_>) -> Ctx {
        let (argsz, index) = (i.argsz.get(), i.index.get());
        if argsz < 16 {
            sink.emit(
                Rule::ArgszTooSmall,
                16,
                format_args!("DEVICE_GET_IRQ_INFO argsz is {argsz}; the reply needs 16"),
            );
        }
        self.irq_index(index, 24, sink);
        for (name, at, v) in [("flags", 20, i.flags.get()), ("count", 28, i.count.get())] {
            if v != 0 {
                sink.emit(
                    Rule::RequestFieldNonzero,
                    at,
                    format_args!("DEVICE_GET_IRQ_INFO request has {name} {v:#x}; it must be 0"),
                );
                break;
            }
        }
        Ctx::Info { argsz, index }
    }

    pub(super) fn req_set_irqs(
        &mut self,
        s: &IrqSet,
        extra: usize,
        ev: &Event<'_>,
        sink: &mut Sink<'_>,
    ) -> Ctx {
        let (argsz, flags, index) = (s.argsz.get(), s.flags.get(), s.index.get());
        let (start, count) = (s.start.get(), s.count.get());
        let payload = ev.bytes.len() - HEADER_SIZE;
        if argsz as usize != payload {
            sink.emit(
                Rule::ArgszMismatch,
                16,
                format_args!("SET_IRQS argsz is {argsz}; the request payload is {payload} bytes"),
            );
        }
        let data = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
        let action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
        let undefined = flags & !(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK);
        let flags_ok = undefined == 0 && data.count_ones() == 1 && action.count_ones() == 1;
        if !flags_ok {
            let why = if undefined != 0 {
                format!("set the undefined bits {undefined:#x}")
            } else if data.count_ones() != 1 {
                format!("name {} data types", data.count_ones())
            } else {
                format!("name {} actions", action.count_ones())
            };
            sink.emit(
                Rule::SetIrqsFlags,
                20,
                format_args!("SET_IRQS flags {flags:#x} {why}; exactly one data type and one action are needed"),
            );
        }
        let index_ok = self.irq_index(index, 24, sink);
        match start.checked_add(count) {
            None => sink.emit(
                Rule::SetIrqsRange,
                28,
                format_args!("SET_IRQS start {start} + count {count} overflows"),
            ),
            Some(end) => {
                if let Some(n) = self.irq_count(index).filter(|&n| index_ok && end > n) {
                    sink.emit(
                        Rule::SetIrqsRange,
                        28,
                        format_args!(
                            "SET_IRQS vectors [{start}, {end}) exceed the {n} that GET_IRQ_INFO reported for index {index}"
                        ),
                    );
                }
            }
        }
        if flags_ok {
            let none_trigger = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
            if count == 0 && (start != 0 || flags != none_trigger) {
                let at = if start != 0 { 28 } else { 20 };
                sink.emit(
                    Rule::SetIrqsCountZero,
                    at,
                    format_args!(
                        "SET_IRQS with count 0 has start {start} and flags {flags:#x}; it needs start 0 and DATA_NONE|ACTION_TRIGGER ({none_trigger:#x})"
                    ),
                );
            }
            if (index == IRQ_ERR || index == IRQ_REQ)
                && self.is_pci()
                && (action != VFIO_IRQ_SET_ACTION_TRIGGER || count > 1)
            {
                let name = if index == IRQ_ERR { "ERR" } else { "REQ" };
                let at = if action != VFIO_IRQ_SET_ACTION_TRIGGER {
                    20
                } else {
                    32
                };
                sink.emit(
                    Rule::SetIrqsErrReq,
                    at,
                    format_args!(
                        "SET_IRQS on the {name} index has flags {flags:#x} and count {count}; only ACTION_TRIGGER with count at most 1 is allowed"
                    ),
                );
            }
            if data == VFIO_IRQ_SET_DATA_BOOL && extra > 0 {
                sink.emit(
                    Rule::SetIrqsBoolPayload,
                    ev.bytes.len() - extra,
                    format_args!(
                        "the DATA_BOOL payload is {payload} bytes; count {count} needs {}",
                        20 + u64::from(count)
                    ),
                );
            }
            if data == VFIO_IRQ_SET_DATA_EVENTFD {
                if ev.fds != 0 && ev.fds != count {
                    sink.emit(
                        Rule::SetIrqsFds,
                        0,
                        format_args!(
                            "SET_IRQS DATA_EVENTFD with count {count} carries {} fds; it needs 0 or {count}",
                            ev.fds
                        ),
                    );
                }
            } else if ev.fds > 0 {
                sink.emit(
                    Rule::SetIrqsFds,
                    0,
                    format_args!(
                        "SET_IRQS without DATA_EVENTFD (flags {flags:#x}) carries {} fd(s)",
                        ev.fds
                    ),
                );
            }
        } else if ev.fds > 0 && flags & VFIO_IRQ_SET_DATA_EVENTFD == 0 {
            sink.emit(
                Rule::SetIrqsFds,
                0,
                format_args!("SET_IRQS without DATA_EVENTFD carries {} fd(s)", ev.fds),
            );
        }
        Ctx::None
    }

    /// A DEVICE_GET_IRQ_INFO reply: the vector count of `index`, remembered.
    pub(super) fn reply_irq_info(
        &mut self,
        i: &IrqInfo,
        index: u32,
        payload: usize,
        cmd: Command,
        sink: &mut Sink<'_>,
    ) {
        if i.index.get() != index {
            sink.emit(
                Rule::ReplyEchoMismatch,
                24,
                format_args!(
                    "the GET_IRQ_INFO reply is for index {}; the request asked for {index}",
                    i.index.get()
                ),
            );
        }
        self.reply_argsz(i.argsz.get(), payload, cmd, sink);
        let count = i.count.get();
        match self.irqs.iter_mut().find(|x| x.0 == index) {
            Some(x) => x.1 = count,
            None => self.irqs.push((index, count)),
        }
    }
}
