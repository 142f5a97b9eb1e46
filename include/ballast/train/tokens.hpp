#ifndef BALLAST_TRAIN_TOKENS_HPP
#define BALLAST_TRAIN_TOKENS_HPP

/// @file
/// Token data: byte-level tokenisation of UTF-8 text (vocab 256) and memory-mapped token files.
///
/// Token file format (compatible with llm.c's `.bin` shards): a header of 256 little-endian int32
/// (1024 bytes) — [0] magic 20240520, [1] version 1, [2] number of tokens n, the rest 0 — followed by
/// n little-endian uint16 token ids. A file whose size does not match the header is refused.

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <span>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include <ballast/core/config.hpp>
#include <ballast/core/file.hpp>

namespace ballast
{
    inline constexpr std::int32_t token_file_magic = 20240520;
    inline constexpr std::int32_t token_file_version = 1;
    inline constexpr std::size_t token_file_header_bytes = 256 * sizeof(std::int32_t);

    /// Byte-level tokenisation: every byte of the text is one token in [0, 256).
    inline std::vector<std::uint16_t> bytes_to_tokens(std::span<const std::byte> text)
    {
        std::vector<std::uint16_t> t(text.size());
        for (std::size_t i = 0; i < text.size(); ++i)
        {
            t[i] = static_cast<std::uint16_t>(std::to_integer<unsigned>(text[i]));
        }
        return t;
    }

    /// Write tokens in the token-file format, atomically.
    inline void write_token_file(const std::filesystem::path& path, std::span<const std::uint16_t> tokens)
    {
        std::int32_t header[256] = {};
        header[0] = token_file_magic;
        header[1] = token_file_version;
        BALLAST_CHECK(tokens.size() <= 0x7fffffffu, "write_token_file",
                      "too many tokens for the format: ", tokens.size());
        header[2] = static_cast<std::int32_t>(tokens.size());
        const std::span<const std::byte> parts[] = { std::as_bytes(std::span(header)),
                                                     std::as_bytes(tokens) };
        write_file_atomic(path, std::span<const std::span<const std::byte>>(parts));
    }

    /// A read-only, memory-mapped token file (validated on open).
    class token_file
    {
    public:
        explicit token_file(const std::filesystem::path& path)
          : m_path(path.string())
        {
            const int fd = ::open(m_path.c_str(), O_RDONLY | O_CLOEXEC);
            BALLAST_CHECK(fd >= 0, "token_file", "cannot open '", m_path, "': ", std::strerror(errno));
            struct stat st
            {
            };
            const bool ok = ::fstat(fd, &st) == 0;
            m_size = ok ? static_cast<std::size_t>(st.st_size) : 0;
            if (ok && m_size > 0)
            {
                void* p = ::mmap(nullptr, m_size, PROT_READ, MAP_PRIVATE, fd, 0);
                m_map = p == MAP_FAILED ? nullptr : p;
            }
            ::close(fd);
            BALLAST_CHECK(ok, "token_file", "cannot stat '", m_path, "'");
            try
            {
                validate();
            }
            catch (...)
            {
                unmap();
                throw;
            }
        }
        ~token_file() { unmap(); }
        token_file(const token_file&) = delete;
        token_file& operator=(const token_file&) = delete;
        token_file(token_file&& o) noexcept
          : m_path(std::move(o.m_path))
          , m_map(o.m_map)
          , m_size(o.m_size)
          , m_count(o.m_count)
        {
            o.m_map = nullptr;
        }

        /// The token ids (valid while this object lives).
        std::span<const std::uint16_t> tokens() const noexcept
        {
            return { reinterpret_cast<const std::uint16_t*>(static_cast<const std::byte*>(m_map) +
                                                            token_file_header_bytes),
                     m_count };
        }
        std::size_t size() const noexcept { return m_count; }
        const std::string& path() const noexcept { return m_path; }

    private:
        void validate()
        {
            BALLAST_CHECK(m_size >= token_file_header_bytes && m_map != nullptr, "token_file", "'", m_path,
                          "' is ", m_size,
                          " bytes, shorter than the 1024-byte header (truncated or not a token file)");
            std::int32_t header[3];
            std::memcpy(header, m_map, sizeof(header));
            BALLAST_CHECK(header[0] == token_file_magic, "token_file", "'", m_path, "' has magic ", header[0],
                          ", expected ", token_file_magic, " (not a token file)");
            BALLAST_CHECK(header[1] == token_file_version, "token_file", "'", m_path, "' has version ",
                          header[1], ", expected ", token_file_version);
            BALLAST_CHECK(header[2] >= 0, "token_file", "'", m_path, "' declares a negative token count");
            m_count = static_cast<std::size_t>(header[2]);
            const std::size_t want = token_file_header_bytes + 2 * m_count;
            BALLAST_CHECK(m_size == want, "token_file", "'", m_path, "' is ", m_size,
                          " bytes but its header declares ", m_count, " tokens (", want,
                          " bytes): truncated or corrupt");
        }
        void unmap() noexcept
        {
            if (m_map != nullptr)
            {
                ::munmap(m_map, m_size);
                m_map = nullptr;
            }
        }

        std::string m_path;
        void* m_map = nullptr;
        std::size_t m_size = 0;
        std::size_t m_count = 0;
    };

    /// Tokens of a file: a token file (by its magic) or, otherwise, UTF-8 text tokenised byte-level.
    inline std::vector<std::uint16_t> load_tokens(const std::filesystem::path& path)
    {
        const auto bytes = read_file(path);
        std::int32_t magic = 0;
        if (bytes.size() >= 4)
        {
            std::memcpy(&magic, bytes.data(), 4);
        }
        if (magic == token_file_magic)
        {
            const token_file f(path);
            return { f.tokens().begin(), f.tokens().end() };
        }
        return bytes_to_tokens(bytes);
    }
} // namespace ballast

#endif
