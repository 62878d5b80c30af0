// Training through nexvitad::train: a short run that opens and scores, cancellation from the
// progress callback with a resume to the same head, an exception thrown by the callback, and
// bad input. The data is the committed synthetic fixture tests/fixtures/train/data.
#include "support.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

using nexvitad::Status;
using nexvitad::TrainPhase;
using nexvitad::TrainProgress;

namespace {

std::string train_root() { return (support::repo_root() / "tests" / "fixtures" / "train" / "data").string(); }

const std::vector<std::string> kSources = {"stripes", "weave"};
const std::string kTarget = "grain";

/// A short run: one epoch of batch 4 (a few steps), a narrow decoder, one perturbed copy.
nexvitad::TrainOptions quick() {
    return nexvitad::TrainOptions().epochs(1).batch(4).decoder_width(8).copies(1).checkpoint_every(0).seed(3);
}

struct Thrown {};

}  // namespace

TEST(Train, ShortRunWritesAModelThatScores) {
    support::TempDir dir;
    const std::string out = (dir.path() / "trained").string();
    std::vector<TrainProgress> seen;
    const nexvitad::TrainResult r = nexvitad::train(
        support::model(), train_root(), kSources, kTarget, out, quick(),
        [&](const TrainProgress& p) {
            seen.push_back(p);
            return true;
        });
    ASSERT_FALSE(seen.empty());
    EXPECT_EQ(seen.front().phase, TrainPhase::encode);
    EXPECT_EQ(seen.back().phase, TrainPhase::step);
    EXPECT_EQ(seen.back().done, seen.back().total);
    EXPECT_EQ(r.steps, seen.back().total);
    EXPECT_EQ(r.steps_run, r.steps);
    EXPECT_EQ(r.epochs, 1u);
    EXPECT_EQ(r.target_images, 3u);
    EXPECT_GT(r.source_images, 0u);
    EXPECT_TRUE(std::isfinite(r.last_epoch.loss));
    EXPECT_GE(r.last_epoch.coverage, 0.0);
    EXPECT_LE(r.last_epoch.coverage, 1.0);
    EXPECT_EQ(r.last_epoch.loss, seen.back().epoch_mean.loss);

    const nexvitad::Model trained(out);
    EXPECT_NE(trained.fingerprint(), support::model().fingerprint());
    const nexvitad::Bank bank = trained.build_bank({support::fixture_view()}, support::quick_bank_options());
    const nexvitad::Result scored = trained.score(bank, support::fixture_view());
    EXPECT_TRUE(std::isfinite(scored.image_score));
    EXPECT_EQ(scored.map.size(), support::fixture_view().pixels());
}

TEST(Train, CancelThenResumeEqualsAnUnbrokenRun) {
    support::TempDir dir;
    const std::string full = (dir.path() / "full").string();
    const std::string part = (dir.path() / "part").string();
    const nexvitad::TrainResult whole = nexvitad::train(support::model(), train_root(), kSources, kTarget, full, quick());
    ASSERT_GE(whole.steps, 2u);

    try {
        nexvitad::train(support::model(), train_root(), kSources, kTarget, part, quick(),
                        [](const TrainProgress& p) { return !(p.phase == TrainPhase::step && p.done == 1); });
        FAIL() << "the callback's false did not cancel";
    } catch (const nexvitad::Error& e) {
        EXPECT_EQ(e.status(), Status::cancelled) << e.what();
    }
    EXPECT_TRUE(support::fs::is_regular_file(support::fs::path(part) / "checkpoint.safetensors"));
    EXPECT_FALSE(support::fs::exists(support::fs::path(part) / "model.json"));

    const nexvitad::TrainResult resumed =
        nexvitad::train(support::model(), train_root(), kSources, kTarget, part, quick().resume(true));
    EXPECT_EQ(resumed.steps, whole.steps);
    EXPECT_EQ(resumed.steps_run, whole.steps - 1);
    EXPECT_EQ(support::read_bytes(support::fs::path(part) / "head.safetensors"),
              support::read_bytes(support::fs::path(full) / "head.safetensors"));
}

TEST(Train, ExceptionInTheCallbackCancelsAndPropagates) {
    support::TempDir dir;
    EXPECT_THROW(nexvitad::train(support::model(), train_root(), kSources, kTarget, (dir.path() / "x").string(),
                                 quick(), [](const TrainProgress&) -> bool { throw Thrown{}; }),
                 Thrown);
}

TEST(Train, BadInputThrowsWithStatusAndMessage) {
    support::TempDir dir;
    const std::string out = (dir.path() / "bad").string();
    auto expect = [&](Status status, const std::string& needle, auto&& call) {
        try {
            call();
            ADD_FAILURE() << "no error; wanted " << needle;
        } catch (const nexvitad::Error& e) {
            EXPECT_EQ(e.status(), status) << e.what();
            EXPECT_NE(e.message().find(needle), std::string::npos) << e.what();
        }
    };
    const auto& m = support::model();
    expect(Status::invalid_argument, "also a source domain",
           [&] { nexvitad::train(m, train_root(), {"stripes", "grain"}, kTarget, out, quick()); });
    expect(Status::invalid_argument, "(0, 1)",
           [&] { nexvitad::train(m, train_root(), kSources, kTarget, out, quick().theta(1.5)); });
    expect(Status::invalid_argument, "n_sources is 0",
           [&] { nexvitad::train(m, train_root(), {}, kTarget, out, quick()); });
    expect(Status::io, "no-such-root",
           [&] { nexvitad::train(m, (dir.path() / "no-such-root").string(), kSources, kTarget, out, quick()); });
    nexvitad::Model closed;
    expect(Status::invalid_argument, "closed",
           [&] { nexvitad::train(closed, train_root(), kSources, kTarget, out, quick()); });
}

// The feature cache (C ABI revision 7): a shared folder encodes once, the memory budget does
// not change the head, a copied TrainOptions keeps its folder, a cache of other data and a
// budget below one step are refused.
TEST(Train, FeatureCacheIsSharedAndTheBudgetDoesNotChangeTheHead) {
    ASSERT_GE(nexvitad_abi_revision(), 7u);
    support::TempDir dir;
    const std::string shared = (dir.path() / "cache").string();
    const std::string first = (dir.path() / "first").string();
    const nexvitad::TrainResult r1 =
        nexvitad::train(support::model(), train_root(), kSources, kTarget, first, quick().cache_dir(shared));
    EXPECT_EQ(r1.cache_bytes, support::fs::file_size(support::fs::path(shared) / "features.nxcache"));
    EXPECT_EQ(r1.encoded, 22u);  // 16 source images, 3 target images with one copy each
    EXPECT_EQ(r1.reused, 0u);
    EXPECT_FALSE(support::fs::exists(support::fs::path(first) / "features.nxcache"));

    // One step's 10 feature sets: every other one is read from the file. Built as a copy of a
    // temporary, so the folder string must live in the copy.
    const std::uint64_t per_set = (r1.cache_bytes - 4096) / 22;
    nexvitad::TrainOptions streamed;
    streamed = quick().cache_dir(shared).cache_mem(10 * per_set);
    const std::string second = (dir.path() / "second").string();
    const nexvitad::TrainResult r2 = nexvitad::train(support::model(), train_root(), kSources, kTarget, second, streamed);
    EXPECT_EQ(r2.encoded, 0u);
    EXPECT_EQ(r2.reused, 22u);
    EXPECT_EQ(support::read_bytes(support::fs::path(second) / "head.safetensors"),
              support::read_bytes(support::fs::path(first) / "head.safetensors"));

    try {
        nexvitad::train(support::model(), train_root(), kSources, kTarget, (dir.path() / "other").string(),
                        quick().cache_dir(shared).seed(4));
        ADD_FAILURE() << "a cache of other data was accepted";
    } catch (const nexvitad::Error& e) {
        EXPECT_EQ(e.status(), Status::mismatch) << e.what();
        EXPECT_NE(e.message().find("other data"), std::string::npos) << e.what();
    }
    try {
        nexvitad::train(support::model(), train_root(), kSources, kTarget, (dir.path() / "small").string(),
                        quick().cache_mem(1u << 20));
        ADD_FAILURE() << "a budget below one step was accepted";
    } catch (const nexvitad::Error& e) {
        EXPECT_EQ(e.status(), Status::invalid_argument) << e.what();
        EXPECT_NE(e.message().find("below one training step"), std::string::npos) << e.what();
    }
}
