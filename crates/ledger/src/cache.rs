//! Where the ledger keeps the transfers it has seen. Ids are time-ordered by convention, so
//! nearly every new transfer has the largest id yet: those are appended to fixed-size chunks
//! that stay sorted by id (no hashing, no rehashing, no copying as the log grows, sequential
//! memory), and looked up by binary search.
//! The rare transfer whose id is below the largest (a client's own id scheme, or a transfer a
//! store brings back into the cache) goes to a hash map beside it.

use hashbrown::HashMap;

use crate::transfer::Transfer;

/// Transfers per chunk: 8 MiB, large enough for huge pages, small enough to waste little.
const CHUNK_TRANSFERS: usize = 1 << 16;

#[derive(Clone, Debug, Default)]
pub(crate) struct TransferCache {
    /// Sorted by id across and within chunks; new transfers go to the last one.
    in_order: Vec<Vec<Transfer>>,
    out_of_order: HashMap<u128, Transfer>,
    /// Empty chunks allocated (and touched) ahead of time, used before any new allocation.
    spare: Vec<Vec<Transfer>>,
}

impl TransferCache {
    /// Allocates room for `transfers` up front and touches it, so that memory is provisioned
    /// by the kernel at start rather than while batches are applied (TigerBeetle's static
    /// allocation, as a capacity rather than a limit).
    pub(crate) fn with_capacity(transfers: usize) -> Self {
        let chunks = transfers.div_ceil(CHUNK_TRANSFERS);
        let spare = (0..chunks)
            .map(|_| {
                let mut chunk = Vec::with_capacity(CHUNK_TRANSFERS);
                // Writing every slot makes the kernel map the pages now.
                // (black_box keeps the compiler from dropping writes nobody reads.)
                let filler = std::hint::black_box(Transfer::default());
                chunk.resize(CHUNK_TRANSFERS, filler);
                std::hint::black_box(chunk.as_mut_slice());
                chunk.clear();
                chunk
            })
            .collect();
        TransferCache {
            spare,
            ..TransferCache::default()
        }
    }

    pub(crate) fn get(&self, id: u128) -> Option<&Transfer> {
        if !self.out_of_order.is_empty()
            && let Some(transfer) = self.out_of_order.get(&id)
        {
            return Some(transfer);
        }
        let chunk = self
            .in_order
            .partition_point(|chunk| chunk.last().is_some_and(|last| last.id < id));
        let chunk = self.in_order.get(chunk)?;
        let index = chunk.binary_search_by_key(&id, |t| t.id).ok()?;
        Some(&chunk[index])
    }

    fn last_in_order(&self) -> Option<&Transfer> {
        self.in_order.last().and_then(|chunk| chunk.last())
    }

    pub(crate) fn len(&self) -> usize {
        self.in_order.iter().map(Vec::len).sum::<usize>() + self.out_of_order.len()
    }

    pub(crate) fn contains(&self, id: u128) -> bool {
        self.get(id).is_some()
    }

    /// Adds a transfer the cache does not hold.
    pub(crate) fn insert(&mut self, transfer: Transfer) {
        if self
            .last_in_order()
            .is_none_or(|last| last.id < transfer.id)
        {
            if self
                .in_order
                .last()
                .is_none_or(|chunk| chunk.len() == chunk.capacity())
            {
                let chunk = self.spare.pop();
                self.in_order
                    .push(chunk.unwrap_or_else(|| Vec::with_capacity(CHUNK_TRANSFERS)));
            }
            let chunk = self
                .in_order
                .last_mut()
                .expect("a chunk with room was just ensured");
            chunk.push(transfer);
        } else {
            assert!(!self.contains(transfer.id), "a transfer is cached once");
            self.out_of_order.insert(transfer.id, transfer);
        }
    }

    /// Removes the transfer inserted last with this id (the journal undoes in reverse order).
    pub(crate) fn remove_last_inserted(&mut self, id: u128) {
        if self.out_of_order.remove(&id).is_none() {
            let chunk = self
                .in_order
                .last_mut()
                .expect("an undone transfer is cached");
            let last = chunk.pop().expect("chunks are never empty");
            assert_eq!(last.id, id, "undo runs in reverse order of inserts");
            if chunk.is_empty() {
                self.in_order.pop();
            }
        }
    }

    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Transfer) -> bool) {
        for chunk in &mut self.in_order {
            chunk.retain(&mut keep);
        }
        self.in_order.retain(|chunk| !chunk.is_empty());
        self.out_of_order.retain(|_, transfer| keep(transfer));
    }
}
