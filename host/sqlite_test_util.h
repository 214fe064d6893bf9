// RawQuery: a test's own look into a loophost SQLite database, on a
// connection of its own, as an operator with the sqlite3 shell would see it.
#pragma once

#include <sqlite3.h>

#include <string>
#include <vector>

namespace loophost::host {

// The rows of `sql` (cells joined by "|", NULL as "NULL"); {"open failed"} if
// the database cannot be opened.
inline std::vector<std::string> RawQuery(const std::string& path,
                                         const std::string& sql) {
  sqlite3* db = nullptr;
  std::vector<std::string> rows;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) return {"open failed"};
  sqlite3_busy_timeout(db, 5000);
  sqlite3_exec(
      db, sql.c_str(),
      [](void* out, int n, char** values, char**) {
        std::string row;
        for (int i = 0; i < n; ++i) {
          if (i > 0) row += "|";
          row += values[i] != nullptr ? values[i] : "NULL";
        }
        static_cast<std::vector<std::string>*>(out)->push_back(row);
        return 0;
      },
      &rows, nullptr);
  sqlite3_close(db);
  return rows;
}

}  // namespace loophost::host
