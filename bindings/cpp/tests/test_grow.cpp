// Banks that grow (C ABI revision 5): BankOptions::growable(), BankInfo::growable,
// Bank::add(), Bank::merge(), and the cross-language fixture expected_grow.json to the last bit.
#include "support.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

using nexvitad::Bank;
using nexvitad::BankInfo;
using nexvitad::ImageView;
using nexvitad::PixelFormat;
using nexvitad::Result;
using nexvitad::Stage;
using nexvitad::Status;
using support::bits;
using support::expected;
using support::expected_grow;

namespace {

/// Runs `f`, expects nexvitad::Error with `status` and `needle` in its message.
void expect_error(Status status, const std::string& needle, const std::function<void()>& f) {
    try {
        f();
    } catch (const nexvitad::Error& e) {
        EXPECT_EQ(e.status(), status) << e.what();
        EXPECT_NE(e.message().find(needle), std::string::npos) << e.what();
        return;
    }
    ADD_FAILURE() << "no nexvitad::Error (" << nexvitad::status_name(status) << ") was thrown; wanted \"" << needle
                  << "\"";
}

/// grow_add.rgb as a packed RGB view.
ImageView grow_add_view() {
    return ImageView(support::grow_add_rgb().data(), expected_grow().grow_add_width,
                     expected_grow().grow_add_height, PixelFormat::rgb8);
}

void expect_grown_fixture(const Result& r, const char* what) {
    SCOPED_TRACE(what);
    const support::Expected& want = expected_grow().plain;
    EXPECT_EQ(bits(r.image_score), want.image_score_bits);
    EXPECT_EQ(bits(r.image_threshold), want.image_threshold_bits);
    EXPECT_EQ(r.is_anomalous, want.is_anomalous);
    EXPECT_EQ(r.width, want.width);
    EXPECT_EQ(r.height, want.height);
    ASSERT_EQ(r.map.size(), want.map_len);
    EXPECT_EQ(support::sha256_hex(r.map.data(), r.map.size()), want.map_sha256);
}

/// Three normal 96x72 images: the fixture image and its two mirrors.
struct GoodImages {
    std::vector<std::uint8_t> h = support::hflip(support::fixture_rgb(), expected().width, expected().height, 3);
    std::vector<std::uint8_t> v = support::vflip(support::fixture_rgb(), expected().width, expected().height, 3);
    std::vector<ImageView> views() const {
        return {support::fixture_view(),
                ImageView(h.data(), expected().width, expected().height, PixelFormat::rgb8),
                ImageView(v.data(), expected().width, expected().height, PixelFormat::rgb8)};
    }
};

nexvitad::BankOptions grow_options() { return support::quick_bank_options().k(8).growable(true); }

/// grow_options() with shared 48 px tiles overlapping by a quarter.
nexvitad::BankOptions tiled_grow_options() { return grow_options().tile(48).tile_overlap(0.25f); }

/// Same thresholds, sizes and settings, and the same score bits and map on the fixture image.
void expect_same_bank(const Bank& got, const Bank& want, const char* what) {
    SCOPED_TRACE(what);
    const BankInfo g = got.info();
    const BankInfo w = want.info();
    EXPECT_EQ(g.shots, w.shots);
    EXPECT_EQ(g.vectors, w.vectors);
    EXPECT_EQ(g.k, w.k);
    EXPECT_EQ(g.growable, w.growable);
    EXPECT_EQ(g.iterations, w.iterations);
    EXPECT_EQ(g.converged, w.converged);
    EXPECT_EQ(bits(g.image_threshold), bits(w.image_threshold));
    EXPECT_EQ(bits(g.pixel_threshold), bits(w.pixel_threshold));
    EXPECT_EQ(bits(g.target_fpr), bits(w.target_fpr));
    const Result a = got.score(support::fixture_view());
    const Result b = support::model().score(want, support::fixture_view());
    EXPECT_EQ(bits(a.image_score), bits(b.image_score));
    EXPECT_EQ(bits(a.image_threshold), bits(b.image_threshold));
    EXPECT_EQ(a.is_anomalous, b.is_anomalous);
    ASSERT_EQ(a.map.size(), b.map.size());
    EXPECT_EQ(support::sha256_hex(a.map.data(), a.map.size()), support::sha256_hex(b.map.data(), b.map.size()));
}

struct Boom {
    int at;
};

}  // namespace

TEST(Grow, OptionsDefaultToNotGrowableAndReachTheCStruct) {
    ASSERT_GE(nexvitad_abi_revision(), 5u);
    const nexvitad::BankOptions d;
    EXPECT_FALSE(d.growable());
    EXPECT_EQ(d.c_options().growable, 0u);
    EXPECT_EQ(d.c_options().reserved2, 0u);
    const nexvitad::BankOptions g = nexvitad::BankOptions().growable(true);
    EXPECT_TRUE(g.growable());
    EXPECT_EQ(g.c_options().growable, 1u);
    EXPECT_EQ(nexvitad::BankOptions(g).c_options().growable, 1u);  // copies keep it
    EXPECT_FALSE(nexvitad::BankOptions(g).growable(false).growable());
    // Banks of earlier revisions are not growable.
    EXPECT_FALSE(support::fixture_bank().info().growable);
}

TEST(Grow, FixtureBitExact) {
    const auto& m = support::model();
    const auto& want = expected_grow();
    const Bank base = m.load_bank((support::crosslang_dir() / "grow2.bank").string());
    const BankInfo bi = base.info();
    EXPECT_TRUE(bi.growable);
    EXPECT_EQ(bi.shots, 2u);
    EXPECT_EQ(bi.k, 8u);

    const Bank grown = base.add({grow_add_view()});
    ASSERT_TRUE(grown.is_open());
    EXPECT_NE(grown.get(), base.get());
    const BankInfo gi = grown.info();
    EXPECT_EQ(gi.shots, want.shots);
    EXPECT_EQ(gi.shots, 3u);
    EXPECT_TRUE(gi.growable);
    EXPECT_EQ(bits(gi.pixel_threshold), want.pixel_threshold_bits);
    EXPECT_EQ(bits(gi.image_threshold), want.plain.image_threshold_bits);
    // grow2.bank itself is unchanged.
    EXPECT_EQ(base.info().shots, 2u);

    const auto view = support::fixture_view();
    expect_grown_fixture(m.score(grown, view), "Model::score");
    expect_grown_fixture(grown.score(view), "Bank::score");
    expect_grown_fixture(grown.score(view, nexvitad::ScoreOptions().regions(false)), "Bank::score, ScoreOptions");
    const std::vector<Result> batch = m.score_batch(grown, {view, view});
    ASSERT_EQ(batch.size(), 2u);
    expect_grown_fixture(batch[1], "Model::score_batch");

    // Saved and loaded back: still growable, the same bits.
    support::TempDir dir;
    const std::string path = (dir.path() / "grow3.bank").string();
    grown.save(path);
    const Bank loaded = m.load_bank(path);
    EXPECT_TRUE(loaded.info().growable);
    EXPECT_EQ(loaded.info().shots, 3u);
    expect_grown_fixture(loaded.score(view), "saved and loaded");
}

TEST(Grow, AddAndMergeEqualTheBuildOnAllImages) {
    const auto& m = support::model();
    GoodImages good;
    const std::vector<ImageView> all = good.views();
    const std::vector<ImageView> first_two(all.begin(), all.begin() + 2);
    const Bank three = m.build_bank(all, grow_options());
    const BankInfo ti = three.info();
    EXPECT_TRUE(ti.growable);
    EXPECT_EQ(ti.shots, 3u);
    const Bank two = m.build_bank(first_two, grow_options());
    EXPECT_TRUE(two.info().growable);
    EXPECT_EQ(two.info().shots, 2u);

    // add: encoding reports the new image, calibration all three.
    std::vector<std::pair<Stage, std::size_t>> seen;
    const Bank added = two.add({all[2]}, [&](Stage s, std::size_t done, std::size_t total) {
        EXPECT_LE(done, total);
        seen.emplace_back(s, total);
        return true;
    });
    expect_same_bank(added, three, "add(2-bank, third image)");
    bool encode = false, calibrate = false;
    for (const auto& [s, total] : seen) {
        if (s == Stage::encode) {
            encode = true;
            EXPECT_EQ(total, 1u);
        }
        if (s == Stage::calibrate) {
            calibrate = true;
            EXPECT_EQ(total, 3u);
        }
    }
    EXPECT_TRUE(encode);
    EXPECT_TRUE(calibrate);
    EXPECT_EQ(two.info().shots, 2u);  // unchanged

    // merge: images 0-1 then image 2.
    const Bank last = m.build_bank({all[2]}, grow_options());
    std::size_t calls = 0;
    const Bank merged = two.merge(last, [&](Stage s, std::size_t, std::size_t) {
        EXPECT_NE(s, Stage::encode);  // nothing is encoded again
        ++calls;
        return true;
    });
    EXPECT_GT(calls, 0u);
    expect_same_bank(merged, three, "merge(bank of 0-1, bank of 2)");
    expect_same_bank(two.merge(last), added, "merge without progress");
    EXPECT_EQ(last.info().shots, 1u);

    // A grown bank grows on: the one-image bank plus the other two (in that order) equals
    // the build in that order.
    const Bank reordered = m.build_bank({all[2], all[0], all[1]}, grow_options());
    expect_same_bank(last.add(first_two), reordered, "add(1-bank, two images)");
}

TEST(Grow, TiledBanksGrowAsTheBuildOnAllImages) {
    const auto& m = support::model();
    GoodImages good;
    const std::vector<ImageView> all = good.views();
    const Bank three = m.build_bank(all, tiled_grow_options());
    const BankInfo ti = three.info();
    EXPECT_TRUE(ti.growable);
    EXPECT_TRUE(ti.tiled());
    EXPECT_EQ(ti.tile, 48u);
    EXPECT_EQ(ti.tile_layout, nexvitad::TileLayout::shared);
    EXPECT_EQ(ti.shots, 3u);
    const Bank two = m.build_bank({all[0], all[1]}, tiled_grow_options());
    EXPECT_EQ(two.info().shots, 2u);

    const Bank added = two.add({all[2]});
    const BankInfo ai = added.info();
    EXPECT_TRUE(ai.growable);
    EXPECT_EQ(ai.tile, 48u);
    EXPECT_EQ(bits(ai.tile_overlap), bits(0.25f));
    expect_same_bank(added, three, "add(tiled 2-bank, third image)");
    // The same image through another path: thresholds and score bits as the build's.
    const Result a = added.score(all[2], nexvitad::no_map);
    const Result b = three.score(all[2], nexvitad::no_map);
    EXPECT_EQ(bits(a.image_score), bits(b.image_score));
    EXPECT_EQ(bits(a.image_threshold), bits(b.image_threshold));
    EXPECT_EQ(bits(a.pixel_threshold), bits(b.pixel_threshold));

    const Bank last = m.build_bank({all[2]}, tiled_grow_options());
    expect_same_bank(two.merge(last), three, "merge(tiled bank of 0-1, tiled bank of 2)");
    EXPECT_EQ(two.info().shots, 2u);  // unchanged
}

TEST(Grow, ErrorsNameTheProblem) {
    const auto& m = support::model();
    GoodImages good;
    const std::vector<ImageView> all = good.views();
    const Bank growable = m.build_bank(all, grow_options());
    const Bank plain = m.build_bank(all, support::quick_bank_options().k(8));
    EXPECT_FALSE(plain.info().growable);

    // add on a bank built without growable.
    expect_error(Status::invalid_argument, "growable", [&] { (void)plain.add({all[0]}); });
    expect_error(Status::invalid_argument, "growable", [&] { (void)support::fixture_bank().add({all[0]}); });
    // merge with a bank that is not growable, either side.
    expect_error(Status::invalid_argument, "growable", [&] { (void)growable.merge(plain); });
    expect_error(Status::invalid_argument, "growable", [&] { (void)plain.merge(growable); });
    // merge of banks with another k: a mismatch naming k.
    const Bank k4 = m.build_bank(all, support::quick_bank_options().k(4).growable(true));
    expect_error(Status::mismatch, "different k", [&] { (void)growable.merge(k4); });
    expect_error(Status::mismatch, "different k", [&] { (void)k4.merge(growable); });
    // ... and another seed: names the seed.
    const Bank seed9 = m.build_bank(all, grow_options().seed(9));
    expect_error(Status::mismatch, "seed", [&] { (void)growable.merge(seed9); });
    // tiled.bank was built without growable: refused as any such bank (for that, not its tiling).
    const Bank tiled = m.load_bank((support::crosslang_dir() / "tiled.bank").string());
    EXPECT_TRUE(tiled.info().tiled());
    EXPECT_FALSE(tiled.info().growable);
    expect_error(Status::invalid_argument, "growable", [&] { (void)tiled.add({all[0]}); });
    expect_error(Status::invalid_argument, "growable", [&] { (void)growable.merge(tiled); });
    expect_error(Status::invalid_argument, "growable", [&] { (void)tiled.merge(growable); });
    // A growable tiled bank and a growable whole-image bank: a mismatch naming the tiling.
    const Bank tiled_growable = m.build_bank(all, tiled_grow_options());
    expect_error(Status::mismatch, "tiling", [&] { (void)growable.merge(tiled_growable); });
    expect_error(Status::mismatch, "tiling", [&] { (void)tiled_growable.merge(growable); });
    // A per-position bank grows only with images of its own size.
    const Bank per_position =
        m.build_bank({all[0], all[1]}, grow_options().tile(48).tile_layout(nexvitad::TileLayout::per_position));
    expect_error(Status::invalid_argument, "one bank per tile position of 96x72 images; images[0] is 300x200",
                 [&] { (void)per_position.add({grow_add_view()}); });
    expect_error(Status::mismatch, "tiling", [&] { (void)per_position.merge(tiled_growable); });
    // growable must be 0 or 1 in the C struct.
    nexvitad::BankOptions two = grow_options();
    two.c_options().growable = 2;
    expect_error(Status::invalid_argument, "options->growable", [&] { (void)m.build_bank(all, two); });
    // No images, an empty image.
    expect_error(Status::invalid_argument, "images", [&] { (void)growable.add(std::vector<ImageView>{}); });
    expect_error(Status::invalid_argument, "images[0]", [&] { (void)growable.add({ImageView()}); });

    // Closed and moved-from banks, on either side.
    Bank closed;
    EXPECT_EQ(support::status_of([&] { (void)closed.add({all[0]}); }), Status::invalid_argument);
    EXPECT_EQ(support::status_of([&] { (void)closed.merge(growable); }), Status::invalid_argument);
    EXPECT_EQ(support::status_of([&] { (void)growable.merge(closed); }), Status::invalid_argument);
    expect_error(Status::invalid_argument, "Bank::add", [&] { (void)closed.add({all[0]}); });
    expect_error(Status::invalid_argument, "Bank::merge", [&] { (void)growable.merge(closed); });
    Bank moved = m.build_bank({all[0]}, grow_options());
    const Bank taker = std::move(moved);
    EXPECT_EQ(support::status_of([&] { (void)moved.add({all[1]}); }), Status::invalid_argument);
    EXPECT_EQ(support::status_of([&] { (void)taker.merge(moved); }), Status::invalid_argument);
    EXPECT_EQ(taker.add({all[1]}).info().shots, 2u);

    // Nothing was spoiled.
    EXPECT_EQ(growable.info().shots, 3u);
    EXPECT_EQ(bits(support::fixture_bank().score(support::fixture_view()).image_score), expected().image_score_bits);
}

TEST(Grow, ProgressCancelsAndRethrows) {
    const auto& m = support::model();
    GoodImages good;
    const std::vector<ImageView> all = good.views();
    const Bank two = m.build_bank({all[0], all[1]}, grow_options());
    const Bank one = m.build_bank({all[2]}, grow_options());
    int calls = 0;
    expect_error(Status::cancelled, "", [&] {
        (void)two.add({all[2]}, [&](Stage, std::size_t, std::size_t) { return ++calls < 2; });
    });
    EXPECT_EQ(calls, 2);
    calls = 0;
    expect_error(Status::cancelled, "", [&] {
        (void)two.merge(one, [&](Stage, std::size_t, std::size_t) { return ++calls < 2; });
    });
    EXPECT_EQ(calls, 2);
    for (int at : {1, 2}) {
        calls = 0;
        try {
            (void)two.merge(one, [&](Stage, std::size_t, std::size_t) -> bool {
                if (++calls == at) throw Boom{at};
                return true;
            });
            ADD_FAILURE() << "no exception";
        } catch (const Boom& b) {
            EXPECT_EQ(b.at, at);  // the very exception thrown
        }
        EXPECT_EQ(calls, at);
        calls = 0;
        try {
            (void)two.add({all[2]}, [&](Stage, std::size_t, std::size_t) -> bool {
                if (++calls == at) throw Boom{at};
                return true;
            });
            ADD_FAILURE() << "no exception";
        } catch (const Boom& b) {
            EXPECT_EQ(b.at, at);
        }
        EXPECT_EQ(calls, at);
    }
    // The banks still grow afterwards.
    EXPECT_EQ(two.merge(one).info().shots, 3u);
}
