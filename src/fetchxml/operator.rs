//! The condition operator table: every operator of the FetchXML schema (83) with its arity,
//! the kind of its values, the columns it applies to and whether it matches null columns.

/// How many values a condition with this operator takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    /// Neither `value` nor `<value>` (e.g. `null`, `today`, `eq-userid`).
    Zero,
    /// The `value` attribute, one `<value>` or (when allowed) `valueof`.
    One,
    /// Exactly two `<value>` elements (`between`, fiscal period and year).
    Two,
    /// One or more `<value>` elements (`in`, `contain-values`).
    AtLeastOne,
}

/// What each value of a condition must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// No values.
    None,
    /// A value of the column's own type.
    Column,
    /// A LIKE pattern (any text).
    Pattern,
    /// A date or date-time.
    Date,
    /// A positive integer count (`last-x-days`).
    Count,
    /// An integer (fiscal year or period).
    Integer,
    /// The GUID of a record of the hierarchy.
    Guid,
}

/// Which columns an operator can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnClass {
    /// Every column type.
    Any,
    /// Numbers, dates, strings and option sets (`gt`, `ge`, `lt`, `le`).
    Ordered,
    /// Numbers and dates (`between`).
    Range,
    /// Strings (`like`, `begins-with`, …).
    String,
    /// Date and time columns.
    DateTime,
    /// The primary key of a table with a hierarchical relationship.
    HierarchyKey,
    /// Multi-select choice columns.
    MultiSelect,
    /// GUID columns: primary keys, lookups, owners (`eq-userid`, `eq-businessid`, …).
    Reference,
    /// Whole-number columns (`eq-userlanguage`).
    Integer,
}

macro_rules! operators {
    ($( $variant:ident $name:literal $arity:ident $value:ident $column:ident $null:literal $fiscal:literal; )*) => {
        /// A FetchXML condition operator.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operator {
            $( $variant, )*
        }

        /// Every operator with its properties, in schema order.
        pub const OPERATORS: &[OperatorInfo] = &[
            $( OperatorInfo {
                operator: Operator::$variant,
                name: $name,
                arity: Arity::$arity,
                value_kind: ValueKind::$value,
                column: ColumnClass::$column,
                matches_null: $null,
                fiscal: $fiscal,
            }, )*
        ];
    };
}

/// The properties of one operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperatorInfo {
    pub operator: Operator,
    /// The FetchXML spelling.
    pub name: &'static str,
    pub arity: Arity,
    pub value_kind: ValueKind,
    pub column: ColumnClass,
    /// Whether a row whose column is null satisfies the condition (negative operators).
    pub matches_null: bool,
    /// Needs the organisation's fiscal calendar.
    pub fiscal: bool,
}

operators! {
    Eq "eq" One Column Any false false;
    Neq "neq" One Column Any true false;
    Ne "ne" One Column Any true false;
    Gt "gt" One Column Ordered false false;
    Ge "ge" One Column Ordered false false;
    Le "le" One Column Ordered false false;
    Lt "lt" One Column Ordered false false;
    Like "like" One Pattern String false false;
    NotLike "not-like" One Pattern String true false;
    In "in" AtLeastOne Column Any false false;
    NotIn "not-in" AtLeastOne Column Any true false;
    Between "between" Two Column Range false false;
    NotBetween "not-between" Two Column Range true false;
    Null "null" Zero None Any false false;
    NotNull "not-null" Zero None Any false false;
    Yesterday "yesterday" Zero None DateTime false false;
    Today "today" Zero None DateTime false false;
    Tomorrow "tomorrow" Zero None DateTime false false;
    LastSevenDays "last-seven-days" Zero None DateTime false false;
    NextSevenDays "next-seven-days" Zero None DateTime false false;
    LastWeek "last-week" Zero None DateTime false false;
    ThisWeek "this-week" Zero None DateTime false false;
    NextWeek "next-week" Zero None DateTime false false;
    LastMonth "last-month" Zero None DateTime false false;
    ThisMonth "this-month" Zero None DateTime false false;
    NextMonth "next-month" Zero None DateTime false false;
    On "on" One Date DateTime false false;
    OnOrBefore "on-or-before" One Date DateTime false false;
    OnOrAfter "on-or-after" One Date DateTime false false;
    LastYear "last-year" Zero None DateTime false false;
    ThisYear "this-year" Zero None DateTime false false;
    NextYear "next-year" Zero None DateTime false false;
    LastXHours "last-x-hours" One Count DateTime false false;
    NextXHours "next-x-hours" One Count DateTime false false;
    LastXDays "last-x-days" One Count DateTime false false;
    NextXDays "next-x-days" One Count DateTime false false;
    LastXWeeks "last-x-weeks" One Count DateTime false false;
    NextXWeeks "next-x-weeks" One Count DateTime false false;
    LastXMonths "last-x-months" One Count DateTime false false;
    NextXMonths "next-x-months" One Count DateTime false false;
    OlderThanXMonths "olderthan-x-months" One Count DateTime false false;
    OlderThanXYears "olderthan-x-years" One Count DateTime false false;
    OlderThanXWeeks "olderthan-x-weeks" One Count DateTime false false;
    OlderThanXDays "olderthan-x-days" One Count DateTime false false;
    OlderThanXHours "olderthan-x-hours" One Count DateTime false false;
    OlderThanXMinutes "olderthan-x-minutes" One Count DateTime false false;
    LastXYears "last-x-years" One Count DateTime false false;
    NextXYears "next-x-years" One Count DateTime false false;
    EqUserId "eq-userid" Zero None Reference false false;
    NeUserId "ne-userid" Zero None Reference true false;
    EqUserTeams "eq-userteams" Zero None Reference false false;
    EqUserOrUserTeams "eq-useroruserteams" Zero None Reference false false;
    EqUserOrUserHierarchy "eq-useroruserhierarchy" Zero None Reference false false;
    EqUserOrUserHierarchyAndTeams "eq-useroruserhierarchyandteams" Zero None Reference false false;
    EqBusinessId "eq-businessid" Zero None Reference false false;
    NeBusinessId "ne-businessid" Zero None Reference true false;
    EqUserLanguage "eq-userlanguage" Zero None Integer false false;
    ThisFiscalYear "this-fiscal-year" Zero None DateTime false true;
    ThisFiscalPeriod "this-fiscal-period" Zero None DateTime false true;
    NextFiscalYear "next-fiscal-year" Zero None DateTime false true;
    NextFiscalPeriod "next-fiscal-period" Zero None DateTime false true;
    LastFiscalYear "last-fiscal-year" Zero None DateTime false true;
    LastFiscalPeriod "last-fiscal-period" Zero None DateTime false true;
    LastXFiscalYears "last-x-fiscal-years" One Count DateTime false true;
    LastXFiscalPeriods "last-x-fiscal-periods" One Count DateTime false true;
    NextXFiscalYears "next-x-fiscal-years" One Count DateTime false true;
    NextXFiscalPeriods "next-x-fiscal-periods" One Count DateTime false true;
    InFiscalYear "in-fiscal-year" One Integer DateTime false true;
    InFiscalPeriod "in-fiscal-period" One Integer DateTime false true;
    InFiscalPeriodAndYear "in-fiscal-period-and-year" Two Integer DateTime false true;
    InOrBeforeFiscalPeriodAndYear "in-or-before-fiscal-period-and-year" Two Integer DateTime false true;
    InOrAfterFiscalPeriodAndYear "in-or-after-fiscal-period-and-year" Two Integer DateTime false true;
    BeginsWith "begins-with" One Pattern String false false;
    NotBeginWith "not-begin-with" One Pattern String true false;
    EndsWith "ends-with" One Pattern String false false;
    NotEndWith "not-end-with" One Pattern String true false;
    Under "under" One Guid HierarchyKey false false;
    EqOrUnder "eq-or-under" One Guid HierarchyKey false false;
    NotUnder "not-under" One Guid HierarchyKey true false;
    Above "above" One Guid HierarchyKey false false;
    EqOrAbove "eq-or-above" One Guid HierarchyKey false false;
    ContainValues "contain-values" AtLeastOne Column MultiSelect false false;
    NotContainValues "not-contain-values" AtLeastOne Column MultiSelect true false;
}

impl Operator {
    /// The operator spelled `name` (case-sensitive, as XML is).
    pub fn from_name(name: &str) -> Option<Operator> {
        OPERATORS
            .iter()
            .find(|info| info.name == name)
            .map(|info| info.operator)
    }

    pub fn info(self) -> &'static OperatorInfo {
        // The table lists the variants in declaration order.
        &OPERATORS[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// `eq`, `ne`, `neq`, `gt`, `ge`, `lt`, `le`: the operators that accept `valueof`.
    pub fn allows_valueof(self) -> bool {
        matches!(
            self,
            Self::Eq | Self::Ne | Self::Neq | Self::Gt | Self::Ge | Self::Lt | Self::Le
        )
    }

    /// All operator names, for "did you mean" suggestions.
    pub fn names() -> impl Iterator<Item = &'static str> {
        OPERATORS.iter().map(|info| info.name)
    }
}

impl std::fmt::Display for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
