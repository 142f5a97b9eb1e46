// libFuzzer target: the JSON-lines readers: ballast::parse_jsonl (metrics and results files) and the study
// results reader ballast::study::load_runs (predict's input). Any failure must be a ballast::error; a
// nlohmann exception escaping means a damaged file gives a message that names no file.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <unistd.h>

#include <ballast/core/jsonl.hpp>
#include <ballast/study/predict.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try
    {
        for (const auto& j : ballast::parse_jsonl(text, "fuzz"))
        {
            if (!j.is_object())
            {
                std::abort();
            }
            (void)ballast::string_field(j, "type");
        }
    }
    catch (const ballast::error&)
    {
    }
    // load_runs reads a path: one file per process, rewritten per input.
    static const std::string path = (std::filesystem::temp_directory_path() /
                                     ("ballast_fuzz_results_" + std::to_string(::getpid()) + ".jsonl"))
                                      .string();
    if (std::FILE* f = std::fopen(path.c_str(), "wb"))
    {
        std::fwrite(data, 1, size, f);
        std::fclose(f);
        try
        {
            (void)ballast::study::load_runs(path);
        }
        catch (const ballast::error&)
        {
        }
    }
    return 0;
}
