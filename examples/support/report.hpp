#ifndef BALLAST_EXAMPLES_SUPPORT_REPORT_HPP
#define BALLAST_EXAMPLES_SUPPORT_REPORT_HPP

// The study's report page (docs/report.md): `tools/report.py DIR` run from a program. The script is
// found through $BALLAST_TOOLS_DIR, then <prefix>/share/ballast/tools next to an installed executable,
// then the source tree the program was built from (BALLAST_SOURCE_DIR, set by examples/CMakeLists.txt).
// A missing Python or matplotlib never fails the caller: it prints one line saying how to make the
// report later.

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace ballast::cli
{
    /// tools/<name>, or an empty path when no candidate exists.
    inline std::filesystem::path find_tool(const std::string& name)
    {
        namespace fs = std::filesystem;
        std::error_code ec;
        const auto exists = [&](const fs::path& p) { return !p.empty() && fs::is_regular_file(p, ec); };
        if (const char* dir = std::getenv("BALLAST_TOOLS_DIR"); dir && *dir && exists(fs::path(dir) / name))
        {
            return fs::path(dir) / name;
        }
        if (const auto exe = fs::read_symlink("/proc/self/exe", ec); !ec)
        {
            if (const auto p = exe.parent_path().parent_path() / "share" / "ballast" / "tools" / name;
                exists(p))
            {
                return p;
            }
        }
#ifdef BALLAST_SOURCE_DIR
        if (const auto p = fs::path(BALLAST_SOURCE_DIR) / "tools" / name; exists(p))
        {
            return p;
        }
#endif
        return {};
    }

    /// `s` quoted for /bin/sh.
    inline std::string shell_quote(const std::string& s)
    {
        std::string q = "'";
        for (const char c : s)
        {
            q += c == '\'' ? std::string("'\\''") : std::string(1, c);
        }
        return q + "'";
    }

    /// Write DIR/report.html with tools/report.py; prints "report: <path>" and returns 0 when written.
    /// Otherwise prints one line saying why and how to make it later (`later`), and returns 1.
    inline int write_report(const std::filesystem::path& dir, const std::string& later)
    {
        const auto script = find_tool("report.py");
        if (script.empty())
        {
            std::printf("report: not written (tools/report.py not found; set BALLAST_TOOLS_DIR to the "
                        "ballast tools/ directory), make it later with: %s\n",
                        later.c_str());
            return 1;
        }
        const std::string python =
          std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
        const std::string probe = python + " -c 'import matplotlib, numpy' >/dev/null 2>&1";
        if (std::system(probe.c_str()) != 0)
        {
            std::printf("report: not written (needs python3 with python3-matplotlib and python3-numpy: "
                        "apt-get install -y python3-matplotlib python3-numpy), make it later with: %s\n",
                        later.c_str());
            return 1;
        }
        std::fflush(stdout);
        const std::string cmd =
          python + " " + shell_quote(script.string()) + " " + shell_quote(dir.string()) + " >/dev/null";
        if (std::system(cmd.c_str()) != 0)
        {
            std::printf("report: not written (tools/report.py failed, see above), make it later with: %s\n",
                        later.c_str());
            return 1;
        }
        std::printf("report: %s\n", (dir / "report.html").string().c_str());
        return 0;
    }
} // namespace ballast::cli

#endif
