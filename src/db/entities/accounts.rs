use sea_orm::entity::prelude::*;

/// A billing account: who owns a Stripe customer, its subscriptions, purchases
/// and invoices. Every user has a personal one; an organization is one with
/// members.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "accounts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub kind: AccountKind,
    pub name: String,
    /// Organizations only.
    #[sea_orm(unique)]
    pub slug: Option<String>,
    /// Personal accounts only.
    #[sea_orm(unique)]
    pub personal_user_id: Option<i64>,
    #[sea_orm(unique)]
    pub stripe_customer_id: Option<String>,
    /// A per-seat plan's seat count an admin chose; `None`: members and open
    /// invitations are counted.
    pub seats_wanted: Option<i32>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum AccountKind {
    #[sea_orm(string_value = "personal")]
    Personal,
    #[sea_orm(string_value = "organization")]
    Organization,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::memberships::Entity")]
    Memberships,
}

impl Related<super::memberships::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Memberships.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
