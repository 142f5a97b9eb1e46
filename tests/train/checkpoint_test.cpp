// Run checkpoints: the tensors of a run (parameters and optimizer state over one flat buffer) go through
// write_checkpoint and read_checkpoint unchanged under the documented names, a missing tensor is refused,
// and check_run_checkpoint refuses another run's checkpoint naming the difference.
#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <ballast/train/checkpoint.hpp>

#include "support/temp_dir.hpp"

namespace
{
    ballast::param_layout two_tensors()
    {
        ballast::param_layout l;
        ballast::param_entry w;
        w.name = "w";
        w.shape = { 2, 3 };
        l.add(w, 4); // offsets aligned to 4 elements: a padded gap after "w"
        ballast::param_entry b;
        b.name = "b";
        b.shape = { 3 };
        l.add(b, 4);
        return l;
    }

    /// A buffer whose every element says where it is and which buffer it belongs to.
    std::vector<double> numbered(std::size_t n, double tag)
    {
        std::vector<double> v(n);
        for (std::size_t i = 0; i < n; ++i)
        {
            v[i] = tag + 0.001 * static_cast<double>(i);
        }
        return v;
    }

    constexpr std::array<std::string_view, 2> state_names{ "m", "v" };

    /// A checkpoint of step 4 in `dir`: two_tensors() with numbered parameters and one state "m".
    void write_step4_checkpoint(const std::filesystem::path& dir)
    {
        const auto layout = two_tensors();
        const auto params = numbered(layout.total(), 1), m = numbered(layout.total(), 2);
        const std::array<std::span<const double>, 1> state{ m };
        const std::array<std::string_view, 1> names{ "m" };
        ballast::write_checkpoint(dir, 4, {}, ballast::run_checkpoint_tensors<double>(layout, params, names, state));
    }
} // namespace

TEST_CASE("the tensors of a run checkpoint round-trip under their names", "[train][checkpoint]")
{
    ballast::test::temp_dir dir("ck_tensors");
    const auto layout = two_tensors();
    REQUIRE(layout.total() == 11);
    const auto params = numbered(layout.total(), 1), m = numbered(layout.total(), 2),
               v = numbered(layout.total(), 3);
    const std::array<std::span<const double>, 2> state{ m, v };
    const auto w = ballast::run_checkpoint_tensors<double>(layout, params, state_names, state);
    ballast::write_checkpoint(dir.path(), 7, { { "who", "me" } }, w);

    const auto ck = ballast::read_checkpoint(dir.path());
    CHECK(ck.manifest["step"] == 7);
    CHECK(ck.manifest["who"] == "me");
    CHECK(ballast::run_checkpoint_names(layout, state_names) ==
          std::vector<std::string>{ "w", "optimizer.m.w", "optimizer.v.w", "b", "optimizer.m.b",
                                    "optimizer.v.b" });
    CHECK(ballast::state_tensor_name("momentum", "blocks.0.mlp.up.weight") ==
          "optimizer.momentum.blocks.0.mlp.up.weight");
    // Read back into zeroed buffers: every element of every tensor, none of the padding.
    std::vector<double> p2(layout.total(), 0), m2(layout.total(), 0), v2(layout.total(), 0);
    ballast::read_run_checkpoint_tensors<double>(ck.tensors, layout, state_names, std::span<double>(p2),
                                                 std::array<std::span<double>, 2>{ m2, v2 });
    for (const auto& e : layout.entries())
    {
        for (std::size_t i = e.offset; i < e.offset + e.size; ++i)
        {
            CHECK(p2[i] == params[i]);
            CHECK(m2[i] == m[i]);
            CHECK(v2[i] == v[i]);
        }
    }
    CHECK(p2[6] == 0); // padding between "w" (6 elements) and "b" (offset 8) is not stored
    CHECK(p2[7] == 0);
    // The state named "m" is the one read into state 0: a checkpoint with the states swapped reads swapped.
    const auto swapped = ballast::run_checkpoint_tensors<double>(
      layout, params, std::array<std::string_view, 2>{ "v", "m" }, state);
    ballast::write_checkpoint(dir.path(), 8, {}, swapped);
    ballast::read_run_checkpoint_tensors<double>(ballast::read_checkpoint(dir.path()).tensors, layout,
                                                 state_names, std::span<double>(p2),
                                                 std::array<std::span<double>, 2>{ m2, v2 });
    CHECK(m2[0] == v[0]);
    CHECK(v2[0] == m[0]);
}

TEST_CASE("a checkpoint without the optimizer state of the run is refused", "[train][checkpoint]")
{
    ballast::test::temp_dir dir("ck_missing");
    const auto layout = two_tensors();
    const auto params = numbered(layout.total(), 1), m = numbered(layout.total(), 2);
    const auto w = ballast::run_checkpoint_tensors<double>(
      layout, params, std::array<std::string_view, 1>{ "m" }, std::array<std::span<const double>, 1>{ m });
    ballast::write_checkpoint(dir.path(), 3, {}, w);
    std::vector<double> p2(layout.total()), m2(layout.total()), v2(layout.total());
    CHECK_THROWS_WITH(ballast::read_run_checkpoint_tensors<double>(
                        ballast::read_checkpoint(dir.path()).tensors, layout, state_names,
                        std::span<double>(p2), std::array<std::span<double>, 2>{ m2, v2 }),
                      Catch::Contains("optimizer.v.w"));
}

TEST_CASE("check_run_checkpoint accepts the same run and refuses another, naming the difference",
          "[train][checkpoint]")
{
    ballast::test::temp_dir dir("ck_identity");
    const nlohmann::json identity = { { "policy_set", "paper_default" }, { "train", { { "lr", 0.01 } } } };
    auto manifest = identity;
    manifest["progress"] = { { "l0", 5.0 } }; // bookkeeping: not part of the identity
    manifest["rng"] = { { "seed", 1 } };
    ballast::write_checkpoint(dir.path(), 6, manifest, ballast::io::safetensors_writer{});
    const auto ck = ballast::read_checkpoint(dir.path());
    CHECK(ballast::check_run_checkpoint(ck, identity, dir.path(), 10) == 6);
    CHECK(ballast::check_run_checkpoint(ck, identity, dir.path(), 6) == 6);
    auto other = identity;
    other["train"]["lr"] = 0.02;
    CHECK_THROWS_WITH(ballast::check_run_checkpoint(ck, other, dir.path(), 10),
                      Catch::Contains("different run") && Catch::Contains("train.lr: 0.01 vs 0.02"));
    CHECK_THROWS_WITH(ballast::check_run_checkpoint(ck, identity, dir.path(), 5),
                      Catch::Contains("step 6 is past the run's 5 steps"));
}

namespace
{
    std::string read_text(const std::filesystem::path& p)
    {
        std::ifstream f(p);
        return std::string(std::istreambuf_iterator<char>(f), {});
    }
    void write_text(const std::filesystem::path& p, const std::string& s)
    {
        std::ofstream(p) << s;
    }
} // namespace

TEST_CASE("an edited manifest is refused: its own fingerprint, the tensor file's name and its step",
          "[train][checkpoint][hardening]")
{
    ballast::test::temp_dir dir("ck_edited");
    write_step4_checkpoint(dir.path());
    const auto manifest_path = dir.path() / ballast::checkpoint_manifest;
    const std::string good = read_text(manifest_path);
    REQUIRE_NOTHROW(ballast::read_checkpoint(dir.path()));

    // The step changed by hand: the manifest no longer matches its own fingerprint.
    auto edited = nlohmann::json::parse(good);
    edited["step"] = 9;
    write_text(manifest_path, edited.dump(2));
    CHECK_THROWS_WITH(ballast::read_checkpoint(dir.path()), Catch::Contains("does not match its own fingerprint"));

    // The step and the fingerprint changed consistently: the tensor file is named for step 4.
    edited["manifest_fnv1a64"] = ballast::manifest_fingerprint(edited);
    write_text(manifest_path, edited.dump(2));
    CHECK_THROWS_WITH(ballast::read_checkpoint(dir.path()),
                      Catch::Contains("names tensor file 'tensors-000000004.safetensors' for step 9"));

    // Even with the file renamed to match, the tensors say which step they hold.
    std::filesystem::rename(dir.path() / "tensors-000000004.safetensors", dir.path() / "tensors-000000009.safetensors");
    edited["tensors"]["file"] = "tensors-000000009.safetensors";
    edited["manifest_fnv1a64"] = ballast::manifest_fingerprint(edited);
    write_text(manifest_path, edited.dump(2));
    CHECK_THROWS_WITH(ballast::read_checkpoint(dir.path()),
                      Catch::Contains("holds the tensors of step 4, the manifest says step 9"));
}

TEST_CASE("tensor files no manifest names are kept and reported, never deleted", "[train][checkpoint][hardening]")
{
    ballast::test::temp_dir dir("ck_orphans");
    const ballast::io::safetensors_writer none;
    ballast::write_checkpoint(dir.path(), 1, {}, none);
    // A second checkpoint replaces the file the manifest named: nothing is reported.
    CHECK(ballast::write_checkpoint(dir.path(), 2, {}, none).empty());
    CHECK_FALSE(std::filesystem::exists(dir.path() / "tensors-000000001.safetensors"));
    // The manifest is lost (a user deleted it, a crashed copy...): starting fresh writes a new
    // checkpoint but keeps the orphaned tensors and says so.
    std::filesystem::remove(dir.path() / ballast::checkpoint_manifest);
    const auto orphans = ballast::write_checkpoint(dir.path(), 3, {}, none);
    REQUIRE(orphans.size() == 1);
    CHECK(orphans[0].filename() == "tensors-000000002.safetensors");
    CHECK(std::filesystem::exists(orphans[0]));
    CHECK(ballast::read_checkpoint(dir.path()).manifest["step"] == 3);
}

TEST_CASE("temporary files of interrupted checkpoint writes are removed by the next write",
          "[train][checkpoint][hardening]")
{
    ballast::test::temp_dir dir("ck_temps");
    std::filesystem::create_directories(dir.path());
    // A temp file left by a process that no longer runs (pid 1 is init and never writes here; use a pid
    // that cannot exist: above the kernel's maximum).
    const auto stale = dir.path() / ".checkpoint.json.tmp.4194305.0";
    write_text(stale, "{ half a manif");
    ballast::write_checkpoint(dir.path(), 1, {}, ballast::io::safetensors_writer{});
    CHECK_FALSE(std::filesystem::exists(stale));
    CHECK(ballast::read_checkpoint(dir.path()).manifest["step"] == 1);
}

TEST_CASE("a manifest with wrongly typed format or version fields is refused naming the file",
          "[train][checkpoint][hardening]")
{
    ballast::test::temp_dir dir("ck_types");
    write_step4_checkpoint(dir.path());
    const auto manifest_path = dir.path() / ballast::checkpoint_manifest;
    const auto good = nlohmann::json::parse(read_text(manifest_path));
    const std::string where = "'" + manifest_path.string() + "'";
    auto bad = good;
    bad["format"] = 7; // a number where a string belongs: used to be nlohmann's type_error.302
    write_text(manifest_path, bad.dump(2));
    CHECK_THROWS_WITH(ballast::read_checkpoint(dir.path()),
                      Catch::Contains(where + " is not a ballast checkpoint manifest"));
    bad = good;
    bad["version"] = "two";
    write_text(manifest_path, bad.dump(2));
    CHECK_THROWS_WITH(ballast::read_checkpoint(dir.path()),
                      Catch::Contains(where + " has version \"two\", this build reads version 2"));
    bad.erase("version");
    write_text(manifest_path, bad.dump(2));
    CHECK_THROWS_WITH(ballast::read_checkpoint(dir.path()), Catch::Contains("has version (none)"));
}

TEST_CASE("checkpoint_clock: due by steps, by time, and never sooner than 100x the last write",
          "[train][checkpoint]")
{
    ballast::checkpoint_clock steps_only(3, 0);
    steps_only.start();
    CHECK_FALSE(steps_only.due(1));
    CHECK(steps_only.due(3));
    CHECK(steps_only.due(6));
    CHECK_FALSE(steps_only.due(7));

    ballast::checkpoint_clock never(0, 0);
    CHECK_FALSE(never.due(1));
    CHECK_FALSE(never.due(1000));

    ballast::checkpoint_clock timed(0, 1e-9); // due at once...
    timed.start();
    CHECK(timed.due(1));
    int writes = 0;
    timed.write([&] { ++writes; std::this_thread::sleep_for(std::chrono::milliseconds(20)); });
    CHECK(writes == 1);
    CHECK(timed.written() == 1);
    CHECK(timed.last_write_seconds() >= 0.02);
    CHECK_FALSE(timed.due(2)); // ...but now only 100 x 20 ms = 2 s after that write
}
