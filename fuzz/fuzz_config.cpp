// libFuzzer target: the TOML config loader of the command-line tools (examples/support/config_file.hpp)
// applied to the three config aggregates, as `train --config` does. Any failure must be a ballast::error
// (one clear line), never another exception or a crash.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <ballast/model/config.hpp>
#include <ballast/train/optimizer.hpp>
#include <ballast/train/train_config.hpp>

#include "support/config_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try
    {
        auto j = ballast::cli::parse_config_text(text, "fuzz.toml");
        ballast::model_config model;
        ballast::train_config cfg;
        ballast::optimizer_config opt;
        ballast::cli::apply_table(j, "model", model, "fuzz");
        ballast::cli::apply_table(j, "train", cfg, "fuzz");
        ballast::cli::apply_table(j, "optimizer", opt, "fuzz");
        ballast::cli::reject_unknown_tables(j, { "model", "train", "optimizer" });
        model.validate();
        opt.validate();
        cfg.validate(model);
    }
    catch (const ballast::error&)
    {
    }
    return 0;
}
