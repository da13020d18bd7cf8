#include "time/watermark.h"

#include <gtest/gtest.h>

namespace cepheus::timing {
namespace {

EventTime T(int64_t ms) { return EventTime::FromMillis(ms); }

TEST(Watermark, TrailsMaxEventTimeByTheAllowedDisorder) {
  WatermarkOptions o;
  o.max_out_of_orderness = Duration::Millis(100);
  InputWatermark w(o, /*bounded=*/true);
  EXPECT_EQ(w.FromEvents(), Watermark::Min());
  w.OnEvent(T(1000), 0);
  w.OnEvent(T(900), 0);  // out of order: does not move it back
  EXPECT_EQ(w.FromEvents().time(), T(899));
  EXPECT_TRUE(w.FromEvents().IsLate(T(899)));
  EXPECT_FALSE(w.FromEvents().IsLate(T(900)));
  w.OnEnd();
  EXPECT_TRUE(w.FromEvents().is_max());
}

// A punctuation (Flink's Watermark(t)) moves an input's watermark to t; with
// generated watermarks as well, the larger of the two holds.
TEST(Watermark, PunctuationsCombineWithGeneratedWatermarksByMax) {
  WatermarkOptions o;
  o.max_out_of_orderness = Duration::Millis(100);
  InputWatermark w(o, /*bounded=*/true);
  w.OnPunctuation(T(500), 0);
  EXPECT_EQ(w.FromEvents().time(), T(500)) << "a punctuation alone is a base";
  EXPECT_TRUE(w.FromEvents().IsLate(T(500)));
  w.OnEvent(T(1000), 0);
  EXPECT_EQ(w.FromEvents().time(), T(899)) << "the generated one is ahead now";
  w.OnPunctuation(T(2000), 0);
  EXPECT_EQ(w.FromEvents().time(), T(2000));
  w.OnPunctuation(T(1500), 0);  // an older punctuation does not move it back
  EXPECT_EQ(w.FromEvents().time(), T(2000));
  auto saved = w.Save();
  InputWatermark restored(o, true);
  restored.Restore(saved);
  EXPECT_EQ(restored.FromEvents().time(), T(2000)) << "a checkpoint keeps the punctuation";
}

TEST(Watermark, PunctuatedInputsIgnoreEventTimesAndTheWallClock) {
  WatermarkOptions o;
  o.from_event_times = false;
  o.idle_timeout = Duration::Seconds(1);
  WatermarkCombiner c;
  int in = c.AddInput(o, /*bounded=*/false);
  c.input(in).OnEvent(T(10'000), 0);
  EXPECT_EQ(c.Update(0), Watermark::Min()) << "events alone do not move it";
  c.input(in).OnPunctuation(T(3000), 0);
  EXPECT_EQ(c.Update(0).time(), T(3000));
  EXPECT_EQ(c.Update(60'000).time(), T(3000)) << "idle: still what the input said";
  c.input(in).OnEnd();
  EXPECT_TRUE(c.Update(60'000).is_max());
}

TEST(Watermark, CombinedIsTheMinimumOverActiveInputs) {
  WatermarkCombiner c;
  int a = c.AddInput(WatermarkOptions{}, true);
  int b = c.AddInput(WatermarkOptions{}, true);
  c.input(a).OnEvent(T(500), 0);
  EXPECT_EQ(c.Update(0), Watermark::Min()) << "b has seen nothing yet";
  c.input(b).OnEvent(T(300), 0);
  EXPECT_EQ(c.Update(0).time(), T(299));
  c.input(b).OnEnd();
  EXPECT_EQ(c.Update(0).time(), T(499));
  c.input(a).OnEnd();
  EXPECT_TRUE(c.Update(0).is_max());
  EXPECT_TRUE(c.AllEnded());
}

TEST(Watermark, BoundedInputsNeverFollowTheWallClock) {
  WatermarkCombiner c;
  int a = c.AddInput(WatermarkOptions{}, /*bounded=*/true);
  c.input(a).OnEvent(T(1000), 0);
  EXPECT_EQ(c.Update(10'000'000).time(), T(999));
}

TEST(Watermark, IdleUnboundedInputsFollowTheWallClock) {
  WatermarkOptions o;
  o.idle_timeout = Duration::Seconds(5);
  WatermarkCombiner c;
  int live = c.AddInput(o, /*bounded=*/false);
  c.input(live).OnEvent(T(1000), /*wall=*/100'000);
  EXPECT_EQ(c.Update(104'000).time(), T(999)) << "not idle yet";
  EXPECT_EQ(c.Update(106'000).time(), T(999 + 6000)) << "idle: advances with the wall clock";
  // A new event resumes event-driven watermarks, which never move back.
  c.input(live).OnEvent(T(1500), 107'000);
  EXPECT_EQ(c.Update(107'000).time(), T(999 + 6000));
}

TEST(Watermark, AnIdleInputDoesNotHoldBackAnActiveOne) {
  WatermarkOptions o;
  o.idle_timeout = Duration::Seconds(5);
  WatermarkCombiner c;
  int quiet = c.AddInput(o, false);
  int busy = c.AddInput(o, false);
  c.input(quiet).OnEvent(T(100), 0);
  c.input(busy).OnEvent(T(9000), 9'000);
  EXPECT_EQ(c.Update(9'000).time(), T(8999));
}

// A new input (a Kafka partition that has not delivered yet) holds the
// watermark back until it has been silent for the idle timeout, counted from
// when it was added -- not from the epoch, which would make it idle at once
// and every event it delivers later late.
TEST(Watermark, AnInputWithoutEventsHoldsBackUntilItsIdleTimeout) {
  WatermarkOptions o;
  o.idle_timeout = Duration::Seconds(5);
  WatermarkCombiner c;
  int early = c.AddInput(o, false);
  c.AddInput(o, false);  // no event yet
  c.input(early).OnEvent(T(9000), 1'000'000);
  EXPECT_EQ(c.Update(1'000'000), Watermark::Min()) << "the silent input holds it back";
  EXPECT_EQ(c.Update(1'004'000), Watermark::Min());
  c.input(early).OnEvent(T(9500), 1'004'500);
  EXPECT_EQ(c.Update(1'005'000).time(), T(9499)) << "the silent one is idle after 5 s";
}

// After a restore the idle clock starts again: the time the process was
// down is not silence (a backlog read after a restart must not be late).
TEST(Watermark, ARestoredInputIsNotIdleBecauseTheProcessWasDown) {
  WatermarkOptions o;
  o.idle_timeout = Duration::Seconds(5);
  InputWatermark before(o, false);
  before.OnEvent(T(1000), 100'000);
  WatermarkCombiner c;
  int in = c.AddInput(o, false);
  c.input(in).Restore(before.Save());
  EXPECT_EQ(c.Update(900'000).time(), T(999)) << "down for 800 s: not idle, no wall-clock jump";
  EXPECT_EQ(c.Update(906'000).time(), T(999 + 6000)) << "silent 6 s after the restart";
}

}  // namespace
}  // namespace cepheus::timing

namespace cepheus::timing {
namespace {

// Extreme event times (decoders refuse them, but the arithmetic must not rely
// on it) saturate instead of wrapping around.
TEST(Watermark, ArithmeticSaturatesAtTheExtremes) {
  WatermarkOptions o;
  o.max_out_of_orderness = Duration::Seconds(5);
  InputWatermark low(o, true);
  low.OnEvent(EventTime::FromMillis(std::numeric_limits<int64_t>::min() + 10), 0);
  EXPECT_EQ(low.FromEvents(), Watermark::Min()) << "not wrapped around to +infinity";
  InputWatermark high(o, false);
  high.OnEvent(EventTime::FromMillis(std::numeric_limits<int64_t>::max() - 10), 0);
  const Watermark w = high.Current(int64_t{1} << 62);  // idle for ages: follows the clock
  EXPECT_FALSE(w.is_max()) << "an open input never reaches +infinity";
  EXPECT_GT(w, Watermark::At(EventTime::FromMillis(0)));
}

}  // namespace
}  // namespace cepheus::timing
