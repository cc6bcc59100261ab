use sea_orm::entity::prelude::*;

/// A Stripe customer known to be deleted: never linked to a user again.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deleted_customers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub stripe_customer_id: String,
    pub deleted_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
