// Building, saving and loading banks; progress and cancellation.
#include "support.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

using nexvitad::ImageView;
using nexvitad::PixelFormat;
using nexvitad::Stage;
using support::bits;
using support::expected;

namespace {

/// Three normal images from the fixture: itself and its two mirrors.
struct GoodImages {
    std::vector<std::uint8_t> h = support::hflip(support::fixture_rgb(), expected().width, expected().height, 3);
    std::vector<std::uint8_t> v = support::vflip(support::fixture_rgb(), expected().width, expected().height, 3);
    std::vector<ImageView> views() const {
        return {support::fixture_view(),
                ImageView(h.data(), expected().width, expected().height, PixelFormat::rgb8),
                ImageView(v.data(), expected().width, expected().height, PixelFormat::rgb8)};
    }
};

void expect_same_map(const nexvitad::Result& a, const nexvitad::Result& b) {
    EXPECT_EQ(bits(a.image_score), bits(b.image_score));
    EXPECT_EQ(bits(a.image_threshold), bits(b.image_threshold));
    ASSERT_EQ(a.map.size(), b.map.size());
    EXPECT_EQ(std::memcmp(a.map.data(), b.map.data(), a.map.size() * sizeof(float)), 0);
}

struct Boom {
    int at;
};

}  // namespace

TEST(Bank, BuildSaveLoadScoresIdentically) {
    const auto& m = support::model();
    GoodImages good;
    const nexvitad::Bank built = m.build_bank(good.views(), support::quick_bank_options().seed(7));
    const nexvitad::BankInfo info = built.info();
    EXPECT_EQ(info.shots, 3u);
    EXPECT_EQ(info.seed, 7u);
    EXPECT_EQ(info.scorer, nexvitad::Scorer::sinkhorn);
    EXPECT_GT(info.vectors, 0u);

    support::TempDir dir;
    const std::string path = (dir.path() / "good.bank").string();
    built.save(path);
    const nexvitad::Bank loaded = m.load_bank(path);
    const nexvitad::BankInfo li = loaded.info();
    EXPECT_EQ(li.vectors, info.vectors);
    EXPECT_EQ(li.dim, info.dim);
    EXPECT_EQ(bits(li.image_threshold), bits(info.image_threshold));

    expect_same_map(m.score(built, support::fixture_view()), m.score(loaded, support::fixture_view()));
}

TEST(Bank, BuildingTwiceGivesTheSameBank) {
    const auto& m = support::model();
    GoodImages good;
    const nexvitad::Bank a = m.build_bank(good.views(), support::quick_bank_options());
    const nexvitad::Bank b = m.build_bank(good.views(), support::quick_bank_options());
    expect_same_map(m.score(a, support::fixture_view()), m.score(b, support::fixture_view()));
}

TEST(Bank, OptionsChangeTheBank) {
    const auto& m = support::model();
    GoodImages good;
    const nexvitad::Bank full = m.build_bank(good.views(), nexvitad::BankOptions().scorer(nexvitad::Scorer::full));
    const nexvitad::BankInfo info = full.info();
    EXPECT_EQ(info.scorer, nexvitad::Scorer::full);
    EXPECT_EQ(info.shots, 3u);
}

TEST(Bank, OutlivesItsModelObject) {
    support::TempDir dir;
    nexvitad::Bank bank;
    {
        nexvitad::Model m(support::model_dir().string());
        bank = m.load_bank((support::crosslang_dir() / "tiny.bank").string());
    }  // the library keeps the model alive for the bank
    EXPECT_GT(bank.info().vectors, 0u);
    EXPECT_NO_THROW(bank.save((dir.path() / "copy.bank").string()));
    const nexvitad::Bank again = support::model().load_bank((dir.path() / "copy.bank").string());
    EXPECT_EQ(bits(support::model().score(again, support::fixture_view()).image_score),
              expected().image_score_bits);
}

TEST(Bank, ScoresAloneAfterItsModelIsGone) {
    nexvitad::Bank bank;
    {
        nexvitad::Model m(support::model_dir().string());
        bank = m.load_bank((support::crosslang_dir() / "tiny.bank").string());
        m.close();  // released before the bank: any order works
    }
    ASSERT_GE(nexvitad_abi_revision(), 2u);
    const nexvitad::Result alone = bank.score(support::fixture_view());  // NULL model in C
    EXPECT_EQ(bits(alone.image_score), expected().image_score_bits);
    expect_same_map(alone, support::model().score(bank, support::fixture_view()));
    EXPECT_EQ(bits(bank.score(support::fixture_view(), nexvitad::no_map).image_score), expected().image_score_bits);
    bank.close();
    EXPECT_THROW(bank.score(support::fixture_view()), nexvitad::Error);
}

TEST(Progress, ReportsEachStage) {
    GoodImages good;
    std::vector<std::pair<Stage, std::size_t>> encode, cluster, calibrate;
    const nexvitad::Bank bank = support::model().build_bank(
        good.views(), support::quick_bank_options(),
        [&](Stage s, std::size_t done, std::size_t total) {
            EXPECT_LE(done, total);
            (s == Stage::encode ? encode : s == Stage::cluster ? cluster : calibrate)
                .emplace_back(s, done);
            if (s == Stage::encode || s == Stage::calibrate) {
                EXPECT_EQ(total, 3u);
            }
            return true;
        });
    EXPECT_TRUE(bank.is_open());
    ASSERT_FALSE(encode.empty());
    EXPECT_EQ(encode.back().second, 3u);
    EXPECT_FALSE(cluster.empty());
}

TEST(Progress, ReturningFalseCancels) {
    GoodImages good;
    int calls = 0;
    try {
        support::model().build_bank(good.views(), support::quick_bank_options(),
                                    [&](Stage, std::size_t, std::size_t) { return ++calls < 2; });
        FAIL() << "the build was not cancelled";
    } catch (const nexvitad::Error& e) {
        EXPECT_EQ(e.status(), nexvitad::Status::cancelled) << e.what();
    }
    EXPECT_EQ(calls, 2);  // no callback after the one that cancelled
    // The model is unharmed.
    EXPECT_EQ(bits(support::model().score(support::fixture_bank(), support::fixture_view()).image_score),
              expected().image_score_bits);
}

TEST(Progress, ExceptionInCallbackCancelsAndIsRethrown) {
    GoodImages good;
    for (int at : {1, 3}) {
        int calls = 0;
        try {
            support::model().build_bank(good.views(), support::quick_bank_options(),
                                        [&](Stage, std::size_t, std::size_t) -> bool {
                                            if (++calls == at) throw Boom{at};
                                            return true;
                                        });
            FAIL() << "no exception";
        } catch (const Boom& b) {
            EXPECT_EQ(b.at, at);  // the very exception thrown, not a nexvitad::Error
        }
        EXPECT_EQ(calls, at);  // cancelled right away: no further callbacks
    }
}
