//! The region's message ring (`ferry::region::ring`): the single-producer single-consumer ring and
//! its wake-up handshake, in every interleaving of a producer and a consumer. The doorbell (an
//! eventfd in ferry) is loom's `Notify`: a lost wake-up leaves a thread waiting forever, which loom
//! reports as a deadlock, so "no lost wake-up" needs no assert of its own.
#![cfg(loom)]

use ferry::loom_api::{Consumer, Producer, Ring, RingError};
use loom::sync::atomic::AtomicU64;
use loom::sync::{Arc, Notify};
use loom::thread;

const CTL_WORDS: usize = 40;

fn words(n: usize) -> Arc<Vec<AtomicU64>> {
    Arc::new((0..n).map(|_| AtomicU64::new(0)).collect())
}

fn bounded(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

/// The producer pushes `n` values into a ring of 2 entries, waiting for room when it is full; the
/// consumer sleeps whenever the ring is empty. Every value arrives once, in order, and neither
/// side sleeps through a wake-up.
fn transfer(n: u64) {
    bounded(move || {
        let (ctl, slots) = (words(CTL_WORDS), words(2));
        let (data_bell, room_bell) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let producer = {
            let (ctl, slots, data_bell, room_bell) = (ctl.clone(), slots.clone(), data_bell.clone(), room_bell.clone());
            thread::spawn(move || {
                let ring = Ring::new(&ctl, &slots, 1);
                let mut p = Producer::default();
                for v in 1..=n {
                    loop {
                        match ring.push(&mut p, &[v]) {
                            Ok(()) => break,
                            Err(RingError::Full) => {
                                if ring.arm_producer(&p).unwrap() {
                                    room_bell.wait();
                                }
                            }
                            Err(RingError::Corrupt) => panic!("corrupt"),
                        }
                    }
                    if ring.take_consumer_waiter() {
                        data_bell.notify();
                    }
                }
            })
        };
        let ring = Ring::new(&ctl, &slots, 1);
        let mut c = Consumer::default();
        let mut got = Vec::new();
        let mut out = [0u64];
        while (got.len() as u64) < n {
            if ring.pop(&mut c, &mut out).unwrap() {
                got.push(out[0]);
                ring.publish_head(&c);
                if ring.take_producer_waiter() {
                    room_bell.notify();
                }
            } else if ring.arm_consumer(&c).unwrap() {
                data_bell.wait();
            }
        }
        producer.join().unwrap();
        assert_eq!(got, (1..=n).collect::<Vec<_>>());
        assert_eq!(ring.pending(&c), Ok(0));
    });
}

#[test]
fn values_arrive_in_order_without_lost_wake_ups() {
    transfer(2);
}

#[test]
fn a_full_ring_wakes_its_producer() {
    transfer(3);
}
