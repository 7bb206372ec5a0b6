//! Behaviour suites for rsdos's storage traits, and helpers for tests.
//!
//! Each trait's doc comment states its contract sentence by sentence; each sentence is one
//! function in [`index_suite`](mod@index_suite) or [`pack_store_suite`](mod@pack_store_suite). An implementation runs the whole suite
//! from its crate's `tests/` folder with one macro call, which expands into one `#[test]` per
//! behaviour, so a failure names the behaviour and the implementation:
//!
//! ```ignore
//! rsdos_testkit::object_index_suite!(|| MyHarness::new());
//! rsdos_testkit::pack_store_suite!(|| MyPackHarness::new());
//! ```
//!
//! [`data`] makes reproducible random contents without extra dependencies:
//!
//! ```
//! let mut rng = rsdos_testkit::data::Rng::new(7);
//! let a = rsdos_testkit::data::random_bytes(&mut rng, 100);
//! assert_eq!(a.len(), 100);
//! ```

pub mod data;
pub mod index_suite;
pub mod many_packs;
pub mod pack_store_suite;

/// Expands into one `#[test]` per behaviour of [`index_suite`](mod@index_suite), each calling `$make()` to get
/// a fresh [`index_suite::IndexHarness`].
#[macro_export]
macro_rules! object_index_suite {
    ($make:expr) => {
        $crate::object_index_suite!(@tests $make;
            sees_commits_of_other_instances,
            get_unknown_is_none,
            get_many_returns_each_known_key_once,
            get_many_accepts_many_keys,
            get_many_is_exact_for_sparse_and_dense_requests,
            get_many_on_an_empty_index_is_empty,
            insert_is_all_or_nothing,
            insert_session_is_invisible_until_commit,
            insert_session_after_a_failure_commits_nothing,
            insert_skips_existing_and_counts_new,
            update_replaces_known_and_ignores_unknown,
            delete_returns_present_and_ignores_unknown,
            totals_count_and_sum,
            pack_ids_are_distinct_and_ascending,
            pack_entries_page_orders_by_offset_then_hashkey,
            hashkeys_page_is_ascending_and_exclusive,
            usable_from_many_threads
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let harness = ($make)();
                $crate::index_suite::$name(&harness);
            }
        )*
    };
}

/// Expands into one `#[test]` per behaviour of [`pack_store_suite`](mod@pack_store_suite), each calling `$make()` to
/// get a fresh [`pack_store_suite::PackStoreHarness`].
#[macro_export]
macro_rules! pack_store_suite {
    ($make:expr) => {
        $crate::pack_store_suite!(@tests $make;
            list_returns_only_packs_ascending,
            len_is_none_for_absent_and_counts_bytes,
            read_at_reads_exact_ranges,
            read_at_absent_pack_is_pack_not_found,
            read_past_end_is_corrupt,
            appender_is_exclusive_until_dropped,
            appended_bytes_land_at_the_end,
            truncate_drops_the_tail_only,
            delete_removes_pack_and_sidecar,
            seal_stores_the_sidecar,
            reads_run_from_many_threads_while_appending,
            open_pack_handle_survives_deletion,
            read_ranges_returns_each_range_in_order,
            open_range_reads_the_range,
            sealed_pack_handles_survive_deletion
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let harness = ($make)();
                $crate::pack_store_suite::$name(&harness);
            }
        )*
    };
}
