// Bad input: each gives a nexvitad::Error with the right status, never a crash.
#include "support.hpp"
#include "../../../tests/c/selftest.h" /* nexvitad_selftest_panic: exported, not in nexvitad.h */

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

using nexvitad::ImageView;
using nexvitad::PixelFormat;
using nexvitad::Status;

namespace {

/// Runs `f`, expects nexvitad::Error with `status`; returns its message for further checks.
std::string expect_error(Status status, const std::function<void()>& f) {
    try {
        f();
    } catch (const nexvitad::Error& e) {
        EXPECT_EQ(e.status(), status) << e.what();
        EXPECT_FALSE(e.message().empty());
        return e.message();
    }
    ADD_FAILURE() << "no nexvitad::Error (" << nexvitad::status_name(status) << ") was thrown";
    return {};
}

}  // namespace

TEST(Errors, WhatCarriesTheStatusName) {
    const nexvitad::Error e(Status::mismatch, "bank from another model");
    EXPECT_STREQ(e.what(), "NEXVITAD_MISMATCH: bank from another model");
    EXPECT_EQ(e.message(), "bank from another model");
    EXPECT_EQ(e.status(), Status::mismatch);
}

TEST(Errors, ClosedModelThrowsInvalidArgument) {
    nexvitad::Model m(support::model_dir().string());
    ASSERT_TRUE(m.is_open());
    m.close();
    EXPECT_FALSE(m);
    EXPECT_NO_THROW(m.close());  // twice: no-op
    const auto& bank = support::fixture_bank();
    auto msg = expect_error(Status::invalid_argument, [&] { m.score(bank, support::fixture_view()); });
    EXPECT_NE(msg.find("closed"), std::string::npos) << msg;
    expect_error(Status::invalid_argument, [&] { m.fingerprint(); });
    expect_error(Status::invalid_argument, [&] { m.load_bank((support::crosslang_dir() / "tiny.bank").string()); });
    expect_error(Status::invalid_argument, [&] { m.build_bank({support::fixture_view()}); });
    expect_error(Status::invalid_argument, [&] { m.score_batch(bank, {support::fixture_view()}); });
}

TEST(Errors, MovedFromModelAndBankThrowInvalidArgument) {
    nexvitad::Model a(support::model_dir().string());
    nexvitad::Model b = std::move(a);
    expect_error(Status::invalid_argument, [&] { a.fingerprint(); });  // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(b.fingerprint().size(), 64u);

    nexvitad::Bank bank = b.load_bank((support::crosslang_dir() / "tiny.bank").string());
    nexvitad::Bank moved;
    moved = std::move(bank);
    expect_error(Status::invalid_argument, [&] { b.score(bank, support::fixture_view()); });
    EXPECT_EQ(support::bits(b.score(moved, support::fixture_view()).image_score),
              support::expected().image_score_bits);
}

TEST(Errors, ClosedBankThrowsInvalidArgument) {
    const auto& m = support::model();
    nexvitad::Bank bank = m.load_bank((support::crosslang_dir() / "tiny.bank").string());
    bank.close();
    EXPECT_NO_THROW(bank.close());
    support::TempDir dir;
    auto msg = expect_error(Status::invalid_argument, [&] { m.score(bank, support::fixture_view()); });
    EXPECT_NE(msg.find("Bank"), std::string::npos) << msg;
    expect_error(Status::invalid_argument, [&] { bank.save((dir.path() / "x.bank").string()); });
    expect_error(Status::invalid_argument, [&] { bank.info(); });
    nexvitad::Bank never_opened;
    expect_error(Status::invalid_argument, [&] { m.score(never_opened, support::fixture_view(), nexvitad::no_map); });
}

TEST(Errors, NullImageIsInvalidArgument) {
    const auto& m = support::model();
    const auto& b = support::fixture_bank();
    expect_error(Status::invalid_argument, [&] { m.score(b, ImageView()); });
    expect_error(Status::invalid_argument, [&] { m.score(b, ImageView(nullptr, 8, 8, PixelFormat::gray8)); });
    std::vector<float> map(64);
    expect_error(Status::invalid_argument, [&] { m.score(b, ImageView(nullptr, 8, 8, PixelFormat::gray8), map); });
    expect_error(Status::invalid_argument, [&] { m.score(b, ImageView(), nexvitad::no_map); });
    expect_error(Status::invalid_argument, [&] { m.build_bank({ImageView()}); });
    auto msg = expect_error(Status::invalid_argument, [&] {
        m.score_batch(b, {support::fixture_view(), ImageView()});
    });
    EXPECT_NE(msg.find('1'), std::string::npos) << "message should name image 1: " << msg;
}

TEST(Errors, EmptyImageIsInvalidArgument) {
    const auto& m = support::model();
    const auto& b = support::fixture_bank();
    const std::uint8_t px[16] = {};
    expect_error(Status::invalid_argument, [&] { m.score(b, ImageView(px, 0, 4, PixelFormat::gray8)); });
    expect_error(Status::invalid_argument, [&] { m.score(b, ImageView(px, 4, 0, PixelFormat::gray8)); });
}

TEST(Errors, BadStrideAndFormatAreInvalidArgument) {
    const auto& m = support::model();
    const auto& b = support::fixture_bank();
    const auto v = support::fixture_view();
    expect_error(Status::invalid_argument, [&] {
        m.score(b, ImageView(v.data, v.width, v.height, PixelFormat::rgb8, v.width * 3 - 1));
    });
    expect_error(Status::invalid_argument, [&] {
        m.score(b, ImageView(v.data, v.width, v.height, static_cast<PixelFormat>(77)));
    });
}

TEST(Errors, MapBufferTooSmallOrEmptyIsInvalidArgument) {
    const auto& m = support::model();
    const auto& b = support::fixture_bank();
    std::vector<float> small(support::expected().map_len - 1, 7.0f);
    expect_error(Status::invalid_argument, [&] { m.score(b, support::fixture_view(), small); });
    for (float f : small) ASSERT_EQ(f, 7.0f);  // nothing written on failure
    std::vector<float> none;
    expect_error(Status::invalid_argument, [&] { m.score(b, support::fixture_view(), none); });
}

TEST(Errors, ImageAboveModelLimitsIsLimitExceeded) {
    nexvitad::Model m(support::model_dir().string(), nexvitad::ModelOptions().max_image_side(64));
    const auto& b = support::fixture_bank();  // 96 x 72 image: above 64
    // With a map the binding refuses before allocating; without one the library refuses.
    expect_error(Status::limit_exceeded, [&] { m.score(b, support::fixture_view()); });
    expect_error(Status::limit_exceeded, [&] { m.score(b, support::fixture_view(), nexvitad::no_map); });
    // A bogus huge size must not allocate gigabytes first.
    expect_error(Status::limit_exceeded, [&] {
        support::model().score(b, ImageView(support::fixture_rgb().data(), 1u << 20, 1u << 20, PixelFormat::rgb8));
    });
}

TEST(Errors, WrongModelBankIsMismatch) {
    support::TempDir dir;
    nexvitad::Model wrong(support::make_wrong_model(dir).string());
    EXPECT_NE(wrong.fingerprint(), support::model().fingerprint());
    expect_error(Status::mismatch, [&] {
        wrong.load_bank((support::crosslang_dir() / "tiny.bank").string());
    });
    // Scoring with a bank of another model is refused too.
    expect_error(Status::mismatch, [&] { wrong.score(support::fixture_bank(), support::fixture_view()); });
}

TEST(Errors, MissingModelFolderIsIo) {
    support::TempDir dir;
    expect_error(Status::io, [&] { nexvitad::Model m((dir.path() / "no-such-model").string()); });
}

TEST(Errors, MissingOrCorruptBankFile) {
    support::TempDir dir;
    const auto& m = support::model();
    expect_error(Status::io, [&] { m.load_bank((dir.path() / "missing.bank").string()); });
    support::write_text(dir.path() / "garbage.bank", "this is not a bank");
    expect_error(Status::format, [&] { m.load_bank((dir.path() / "garbage.bank").string()); });
    expect_error(Status::invalid_argument, [&] { m.load_bank(""); });
}

TEST(Errors, BuildWithoutImagesIsInvalidArgument) {
    expect_error(Status::invalid_argument, [&] {
        support::model().build_bank(nexvitad::Span<const ImageView>());
    });
    expect_error(Status::invalid_argument, [&] {
        // max_iters 0 is the default (C ABI revision 2); a negative epsilon is refused.
        support::model().build_bank({support::fixture_view()}, nexvitad::BankOptions().epsilon(-1.0f));
    });
    expect_error(Status::invalid_argument, [&] {
        // NaN is never "the default" (a negative sigma is).
        support::model().build_bank({support::fixture_view()}, nexvitad::BankOptions().sigma(std::nanf("")));
    });
}

TEST(Errors, LibraryPanicBecomesInternalError) {
    auto msg = expect_error(Status::internal, [] { nexvitad::detail::check(nexvitad_selftest_panic()); });
    EXPECT_NE(msg.find("deliberate panic"), std::string::npos) << msg;
}
