// The registry's Prometheus exposition: families with HELP and TYPE, label
// sets parsed from their rendered form, gauges kept in milliseconds shown
// in seconds, and values that follow the handles.
#include <gtest/gtest.h>

#include "metrics/counters.h"

namespace cepheus::metrics {
namespace {

TEST(MetricsRegistry, RendersFamiliesLabelsAndBaseUnits) {
  Registry r;
  Counter& all = r.GetCounter("cepheus_x_total", "Things");
  Counter& a = r.GetCounter("cepheus_y_total", "Per stream", "stream=\"a\"");
  Counter& b = r.GetCounter("cepheus_y_total", "Per stream", "stream=\"b\\\"q\"");
  Gauge& g = r.GetGauge("cepheus_live", "Now");
  Gauge& ms = r.GetMillisGauge("cepheus_wait_seconds", "A wait");
  all.Add(3);
  a.Add(1);
  b.Add(2);
  b.Add(5);
  g.Set(-4);
  ms.Set(1500);
  EXPECT_EQ(&r.GetCounter("cepheus_y_total", "Per stream", "stream=\"a\""), &a) << "same handle";
  EXPECT_EQ(r.CounterTotal("cepheus_y_total"), 8u);
  const std::string text = r.RenderText();
  for (const char* line :
       {"# HELP cepheus_x_total Things\n", "# TYPE cepheus_x_total counter\n",
        "\ncepheus_x_total 3\n", "# TYPE cepheus_y_total counter\n",
        "\ncepheus_y_total{stream=\"a\"} 1\n", "\ncepheus_y_total{stream=\"b\\\"q\"} 7\n",
        "# TYPE cepheus_live gauge\n", "\ncepheus_live -4\n", "# TYPE cepheus_wait_seconds gauge\n",
        "\ncepheus_wait_seconds 1.5\n"})
    EXPECT_NE(text.find(line), std::string::npos) << line << " not in:\n" << text;
}

}  // namespace
}  // namespace cepheus::metrics
