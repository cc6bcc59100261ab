use sea_orm::entity::prelude::*;

/// How a closed dispute ended (`won`, `lost`, …), kept so that its events
/// apply in any order.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "dispute_outcomes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub stripe_dispute_id: String,
    pub status: String,
    pub closed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
