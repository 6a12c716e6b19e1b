//! The loader's shards for data-parallel training: the same permutation on every rank,
//! disjoint shards of equal length that cover the epoch, and batch b of all ranks together
//! equal to batch b of one process with a batch as large as theirs together.

use std::collections::BTreeMap;
use std::sync::Arc;
use tapegrad_data::{synthetic, DataLoader, Dataset, LoaderOptions, Shard, ShardTail};

fn data(n: usize) -> Arc<Dataset> {
    let ds = synthetic::shapes(n.div_ceil(4), 1).unwrap();
    Arc::new(ds.subset(&(0..n).collect::<Vec<_>>()).unwrap())
}

fn loader(ds: &Arc<Dataset>, batch: usize, shard: Option<Shard>) -> DataLoader {
    let opts = LoaderOptions {
        seed: 11,
        shard,
        prefetch: 0,
        ..Default::default()
    };
    DataLoader::new(ds.clone(), batch, opts).unwrap()
}

fn shard(rank: usize, ranks: usize, tail: ShardTail) -> Option<Shard> {
    Some(Shard::new(rank, ranks, tail).unwrap())
}

/// How often each sample occurs in the epoch's shards of `ranks` ranks.
fn counts(ds: &Arc<Dataset>, ranks: usize, tail: ShardTail, epoch: u64) -> BTreeMap<usize, usize> {
    let mut c = BTreeMap::new();
    for r in 0..ranks {
        for i in loader(ds, 4, shard(r, ranks, tail)).order(epoch) {
            *c.entry(i).or_insert(0) += 1;
        }
    }
    c
}

#[test]
fn shards_are_disjoint_and_cover_an_even_epoch() {
    // 24 samples over 3 ranks: 8 each, every sample exactly once, whatever the tail rule.
    let ds = data(24);
    for tail in [ShardTail::Wrap, ShardTail::Drop, ShardTail::Uneven] {
        for epoch in 0..3 {
            let c = counts(&ds, 3, tail, epoch);
            assert_eq!(c.len(), 24, "{tail:?}");
            assert!(c.values().all(|&k| k == 1), "{tail:?}");
        }
        for r in 0..3 {
            assert_eq!(loader(&ds, 4, shard(r, 3, tail)).samples(), 8);
        }
    }
}

#[test]
fn an_uneven_set_is_wrapped_dropped_or_left_uneven() {
    // 26 samples over 4 ranks: 26 = 4 * 6 + 2.
    let ds = data(26);
    // Wrap: ceil(26 / 4) = 7 each, 28 in all: every sample at least once, 2 twice.
    let c = counts(&ds, 4, ShardTail::Wrap, 1);
    assert_eq!(c.len(), 26);
    assert_eq!(c.values().filter(|&&k| k == 2).count(), 2);
    // Drop: 6 each, 24 distinct samples, 2 left out.
    let c = counts(&ds, 4, ShardTail::Drop, 1);
    assert_eq!(c.len(), 24);
    assert!(c.values().all(|&k| k == 1));
    // Uneven: ranks 0 and 1 get 7, ranks 2 and 3 get 6; each sample exactly once.
    let c = counts(&ds, 4, ShardTail::Uneven, 1);
    assert_eq!(c.len(), 26);
    assert!(c.values().all(|&k| k == 1));
    let lens: Vec<usize> = (0..4)
        .map(|r| {
            loader(&ds, 4, shard(r, 4, ShardTail::Uneven))
                .order(1)
                .len()
        })
        .collect();
    assert_eq!(lens, vec![7, 7, 6, 6]);
    for tail in [ShardTail::Wrap, ShardTail::Drop] {
        let lens: Vec<usize> = (0..4)
            .map(|r| loader(&ds, 4, shard(r, 4, tail)).len())
            .collect();
        assert!(lens.iter().all(|&l| l == lens[0]), "{tail:?}: {lens:?}");
    }
}

#[test]
fn fewer_samples_than_ranks_wrap_around() {
    // 2 samples over 3 ranks with Wrap: one each, the first repeated.
    let ds = data(2);
    let c = counts(&ds, 3, ShardTail::Wrap, 0);
    assert_eq!(c.values().sum::<usize>(), 3);
    assert_eq!(c.len(), 2);
}

#[test]
fn ranks_together_take_the_batches_of_one_larger_batch() {
    // 2 ranks of batch 8 = 1 process of batch 16, batch by batch, as sets of samples.
    let ds = data(64);
    let whole: Vec<Vec<usize>> = loader(&ds, 16, None)
        .epoch(3)
        .map(|b| b.unwrap().indices)
        .collect();
    let parts: Vec<Vec<Vec<usize>>> = (0..2)
        .map(|r| {
            loader(&ds, 8, shard(r, 2, ShardTail::Wrap))
                .epoch(3)
                .map(|b| b.unwrap().indices)
                .collect()
        })
        .collect();
    assert_eq!(whole.len(), 4);
    for (b, w) in whole.iter().enumerate() {
        let mut together = [parts[0][b].clone(), parts[1][b].clone()].concat();
        together.sort_unstable();
        let mut w = w.clone();
        w.sort_unstable();
        assert_eq!(together, w, "batch {b}");
    }
    // Another epoch is another permutation.
    assert_ne!(
        loader(&ds, 8, shard(0, 2, ShardTail::Wrap)).order(0),
        loader(&ds, 8, shard(0, 2, ShardTail::Wrap)).order(1)
    );
}

#[test]
fn a_rank_outside_the_world_is_an_error() {
    assert!(Shard::new(2, 2, ShardTail::Wrap).is_err());
    let opts = LoaderOptions {
        shard: Some(Shard {
            rank: 3,
            ranks: 2,
            tail: ShardTail::Drop,
        }),
        ..Default::default()
    };
    let e = DataLoader::new(data(4), 2, opts).err().unwrap().to_string();
    assert!(e.contains("DataLoader") && e.contains("rank 3"), "{e}");
}
