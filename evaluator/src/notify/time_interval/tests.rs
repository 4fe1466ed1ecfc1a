use super::*;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn interval(yaml: &str) -> TimeInterval {
    let value: Value = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
    parse_interval(&value).unwrap_or_else(|e| panic!("{yaml}: {e:?}"))
}

fn problems(yaml: &str) -> Vec<FieldProblem> {
    let value: Value = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
    parse_interval(&value).expect_err(yaml)
}

#[test]
fn office_hours_follow_daylight_saving_time_in_berlin_and_new_york() {
    let berlin = interval("{times: [{start_time: '09:00', end_time: '17:00'}], weekdays: ['monday:friday'], location: Europe/Berlin}");
    let new_york = interval("{times: [{start_time: '09:00', end_time: '17:00'}], weekdays: ['Monday:Friday'], location: America/New_York}");
    // (instant, inside in Berlin, inside in New York)
    let table = [
        // Berlin on CET (UTC+1) before 29 March, CEST (UTC+2) after.
        ("2026-03-27T08:30:00Z", true, false),  // Fri 09:30 CET
        ("2026-03-27T07:30:00Z", false, false), // Fri 08:30 CET
        ("2026-03-27T15:30:00Z", true, true),   // Fri 16:30 CET; 11:30 EDT
        ("2026-03-30T07:30:00Z", true, false),  // Mon 09:30 CEST
        ("2026-03-30T06:30:00Z", false, false), // Mon 08:30 CEST
        ("2026-03-30T15:30:00Z", false, true),  // Mon 17:30 CEST; 11:30 EDT
        ("2026-03-28T10:00:00Z", false, false), // Saturday
        // New York on EST (UTC-5) before 8 March, EDT (UTC-4) after.
        ("2026-03-06T14:30:00Z", true, true),   // Fri 09:30 EST
        ("2026-03-06T13:30:00Z", true, false),  // Fri 08:30 EST
        ("2026-03-09T13:30:00Z", true, true),   // Mon 09:30 EDT
        ("2026-03-09T21:30:00Z", false, false), // Mon 17:30 EDT
        // And back in autumn: Berlin 25 October, New York 1 November.
        ("2026-10-23T07:30:00Z", true, false), // Fri 09:30 CEST; 03:30 EDT
        ("2026-10-26T07:30:00Z", false, false), // Mon 08:30 CET
        ("2026-10-26T08:30:00Z", true, false), // Mon 09:30 CET; 04:30 EDT
        ("2026-10-30T13:30:00Z", true, true),  // Fri 14:30 CET; 09:30 EDT
        ("2026-11-02T13:30:00Z", true, false), // Mon 14:30 CET; 08:30 EST
        ("2026-11-02T14:30:00Z", true, true),  // Mon 15:30 CET; 09:30 EST
    ];
    for (instant, in_berlin, in_new_york) in table {
        assert_eq!(
            berlin.contains(utc(instant)),
            in_berlin,
            "Berlin at {instant}"
        );
        assert_eq!(
            new_york.contains(utc(instant)),
            in_new_york,
            "New York at {instant}"
        );
    }
}

#[test]
fn days_counted_from_the_end_of_the_month_know_leap_years() {
    let last_three = interval("{days_of_month: ['-3:-1']}");
    assert!(!last_three.contains(utc("2026-02-25T12:00:00Z")));
    assert!(last_three.contains(utc("2026-02-26T12:00:00Z")));
    assert!(
        !last_three.contains(utc("2028-02-26T12:00:00Z")),
        "Feb 2028 has 29 days"
    );
    assert!(last_three.contains(utc("2028-02-27T12:00:00Z")));
    assert!(last_three.contains(utc("2026-12-31T23:59:00Z")));
    // From the 7th to the 7th last; a start beyond the month never matches.
    let mixed = interval("{days_of_month: ['7:-7']}");
    assert!(mixed.contains(utc("2026-02-22T00:00:00Z")));
    assert!(!mixed.contains(utc("2026-02-23T00:00:00Z")));
    let thirty_first = interval("{days_of_month: ['31']}");
    assert!(!thirty_first.contains(utc("2026-04-30T00:00:00Z")));
    assert!(thirty_first.contains(utc("2026-05-31T00:00:00Z")));
}

#[test]
fn times_exclude_their_end_and_months_years_ranges_are_inclusive() {
    let night = interval("{times: [{start_time: '22:00', end_time: '24:00'}, {start_time: '00:00', end_time: '06:00'}]}");
    assert!(night.contains(utc("2026-05-01T23:59:00Z")));
    assert!(night.contains(utc("2026-05-01T00:00:00Z")));
    assert!(!night.contains(utc("2026-05-01T06:00:00Z")));
    // Numbers and names mix.
    let summer = interval("{months: ['6:august'], years: ['2026']}");
    assert!(summer.contains(utc("2026-06-01T00:00:00Z")));
    assert!(summer.contains(utc("2026-08-31T23:00:00Z")));
    assert!(!summer.contains(utc("2026-09-01T00:00:00Z")));
    assert!(!summer.contains(utc("2027-07-01T00:00:00Z")));
}

#[test]
fn bad_fields_are_reported_with_their_path() {
    let found = problems(
        "{times: [{start_time: '17:00', end_time: '09:00'}, {start_time: '25:00', end_time: '26:00'}], weekdays: ['mondy', 'friday:monday'], days_of_month: ['0', '-32', '5:2'], months: ['smarch'], years: ['x'], location: Mars/Olympus, moon: full}",
    );
    let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "times[0]",
            "times[1]",
            "weekdays[0]",
            "weekdays[1]",
            "days_of_month[0]",
            "days_of_month[1]",
            "days_of_month[2]",
            "months[0]",
            "years[0]",
            "location",
            "moon"
        ]
    );
    assert!(
        found[2].1.contains("\"mondy\" is not a valid weekday"),
        "{found:?}"
    );
    assert!(
        found[9].1.contains("unknown time zone Mars/Olympus"),
        "{found:?}"
    );
    assert!(problems("{months: ['december:february']}")[0]
        .1
        .contains("cannot be after"));
}
