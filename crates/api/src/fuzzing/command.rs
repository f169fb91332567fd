//! Request bodies into core commands: a body is parsed as its route's handler parses it
//! (`body::parse`, unknown fields refused), checked with the handler's own checks, made into
//! the command the handler submits, and applied to a core that holds a few people, trades, a
//! shop and a fund, as the writer applies it.

use formica_core::credit::CreditCommand;
use formica_core::credit_line::CreditLineCommand;
use formica_core::deposit::{HoldCommand, NewFreeze};
use formica_core::fund::{CUTOFF_DEFAULT, FundCommand, Income};
use formica_core::merchant::{MerchantCommand, MerchantProfile};
use formica_core::trade::{NewTrade, TradeCommand};
use formica_core::wallet::{Level, WalletCommand};
use formica_core::{
    Command, CommandError, Core, Currency, Id, Money, Outcome, ProductCommand, ProductRequest,
    Refusal, Reply,
};

use crate::error::ApiError;
use crate::gateway::time;
use crate::wallet::PersonRef;
use crate::{body, credit, credit_line, fund, hold, merchant, people, trade, wallet};

const SECOND: u64 = 1_000_000_000;

/// When the world is made: 2026-12-02 10:00:00 UTC.
const START: u64 = 1_796_205_600 * SECOND;

/// The logins of the world's two people, for bodies that name a person by login.
const BUYER_LOGIN: &str = "13800000001";
const SELLER_LOGIN: &str = "seller@example.com";

/// The card every movement in the world names.
const CARD: Id = Id(900);

/// The first byte picks the route, the second the caller and the objects the path names,
/// the rest is the JSON body. No body panics anything; a command the core refuses changes
/// nothing and maps to an API error; a command is applied the same way twice (the first
/// time rolled back, which restores the books and the products exactly); the books never
/// refuse what a product approved and balance after every batch, timers included; an
/// outcome survives the JSON round trip the outbox and idempotency keys put it through.
pub fn command(data: &[u8]) {
    let [route, choice, json @ ..] = data else {
        return;
    };
    let mut world = World::new();
    let Ok(product) = request(*route, *choice, json, &world) else {
        return;
    };
    world.apply_checked(product);
    // Then the timers, some time later: trades, refunds and bank movements come due.
    let later = [0, 3600, 2 * 86_400, 100 * 86_400][usize::from(choice >> 6)] * SECOND;
    world.core.begin_batch();
    world.core.expire(world.now + later);
    let _ = world.core.effects();
    world.core.commit_batch();
    books_balance(&world.core);
}

/// The handler's parse, checks and command for one route, with the caller and the objects
/// in the path picked by `choice`.
fn request(route: u8, choice: u8, json: &[u8], world: &World) -> Result<ProductCommand, ApiError> {
    let caller = if choice & 1 == 0 {
        world.buyer
    } else {
        world.seller
    };
    let trade_id = [
        world.open_trade,
        world.paid_trade,
        world.shop_trade,
        Id(u64::MAX),
    ][usize::from(choice >> 1) % 4];
    let flag = choice & 8 != 0;
    Ok(match route % 25 {
        0 => {
            let value: trade::NewTrade = body::parse(json)?;
            let out_trade_no = trade::text(&value.out_trade_no, "out_trade_no", true)?;
            let subject = trade::text(&value.subject, "subject", true)?;
            let amount = value.amount.money("amount")?;
            let buyer = match &value.buyer {
                Some(buyer) => Some(world.person(buyer, "buyer")?),
                None => None,
            };
            ProductCommand::Trade(TradeCommand::Create {
                seller_id: caller,
                buyer_id: buyer,
                out_trade_no,
                subject,
                amount,
            })
        }
        1 => {
            let value: trade::PayInput = body::parse(json)?;
            match (value.fund_id, value.credit_line) {
                (Some(_), true) => {
                    return Err(ApiError::new("invalid_field", "a fund or the line"));
                }
                (None, false) => ProductCommand::Trade(TradeCommand::Pay {
                    trade_id,
                    buyer_id: caller,
                }),
                (None, true) => ProductCommand::CreditLine(CreditLineCommand::PayTrade {
                    trade_id,
                    buyer_id: caller,
                }),
                (Some(fund_id), false) => ProductCommand::Fund(FundCommand::PayTrade {
                    fund_id,
                    trade_id,
                    buyer_id: caller,
                }),
            }
        }
        2 => {
            let value: trade::Shipment = body::parse(json)?;
            ProductCommand::Trade(TradeCommand::Ship {
                trade_id,
                seller_id: caller,
                tracking: trade::text(&value.tracking, "tracking", true)?,
            })
        }
        3 => {
            let _: trade::Empty = body::parse(json)?;
            ProductCommand::Trade(match choice >> 4 & 3 {
                0 => TradeCommand::ConfirmReceipt {
                    trade_id,
                    buyer_id: caller,
                },
                1 => TradeCommand::Close {
                    trade_id,
                    seller_id: caller,
                },
                agree => TradeCommand::AnswerRefund {
                    trade_id,
                    seller_id: caller,
                    agree: agree == 2,
                },
            })
        }
        4 => {
            let value: trade::RefundAsk = body::parse(json)?;
            let amount = value.amount.money("amount")?;
            let reason = trade::text(&value.reason, "reason", true)?;
            ProductCommand::Trade(TradeCommand::RequestRefund {
                trade_id,
                buyer_id: caller,
                amount,
                reason,
            })
        }
        5 => {
            let value: trade::DecisionInput = body::parse(json)?;
            ProductCommand::Trade(TradeCommand::Decide {
                trade_id,
                decision: value.decision()?,
            })
        }
        6 => {
            let value: wallet::NewTransfer = body::parse(json)?;
            let amount = value.amount.money("amount")?;
            if value.note.chars().count() > 140 {
                return Err(ApiError::new("invalid_field", "at most 140 characters").field("note"));
            }
            ProductCommand::Wallet(WalletCommand::Transfer {
                from_user_id: caller,
                to_user_id: world.person(&value.to, "to")?,
                amount,
                note: value.note.clone(),
            })
        }
        7 => {
            let value: wallet::BankMove = body::parse(json)?;
            let amount = value.amount.money("amount")?;
            let (user_id, card_id) = (caller, value.card_id);
            ProductCommand::Wallet(if flag {
                WalletCommand::StartTopUp {
                    user_id,
                    amount,
                    card_id,
                }
            } else {
                WalletCommand::StartWithdrawal {
                    user_id,
                    amount,
                    card_id,
                }
            })
        }
        8 => {
            let value: merchant::NewMerchant = body::parse(json)?;
            ProductCommand::Merchant(MerchantCommand::Open(Box::new(value.profile(caller)?)))
        }
        9 => {
            let value: merchant::FeeRate = body::parse(json)?;
            ProductCommand::Merchant(MerchantCommand::SetFeeRate {
                merchant_id: world.shop,
                fee_ppm: value.fee_ppm,
            })
        }
        10 => {
            let value: merchant::NewShopTrade = body::parse(json)?;
            let amount = value.amount.money("amount")?;
            if amount.currency != Currency::CNY {
                return Err(ApiError::new("currency_mismatch", "the shop takes CNY"));
            }
            ProductCommand::Merchant(MerchantCommand::CreateTrade(Box::new(NewTrade {
                out_trade_no: trade::text(&value.out_trade_no, "out_trade_no", true)?,
                subject: trade::text(&value.subject, "subject", true)?,
                pay_by: Some(world.now + merchant::COUNTER_PAY_TIMEOUT_NS),
                ..shop_trade(world.shop, "", amount)
            })))
        }
        11 => {
            let value: merchant::RefundInput = body::parse(json)?;
            let amount = value.amount.money("amount")?;
            ProductCommand::Merchant(MerchantCommand::Refund {
                merchant_id: world.shop,
                trade_id,
                out_request_no: trade::text(&value.out_request_no, "out_request_no", true)?,
                amount,
                reason: trade::text(&value.reason, "reason", false)?,
            })
        }
        12 => {
            let value: fund::NewFund = body::parse(json)?;
            let (name, currency) = value.name_and_currency()?;
            let manager_id = world.person(&value.manager, "manager")?;
            let cutoff_second = match &value.cutoff {
                Some(text) => fund::cutoff_second(text)?,
                None => CUTOFF_DEFAULT,
            };
            ProductCommand::Fund(FundCommand::Create {
                name: name.to_owned(),
                currency,
                manager_id,
                cutoff_second,
                instant_limit: value.instant_limit(currency)?,
            })
        }
        13 => {
            let value: fund::FundMove = body::parse(json)?;
            if flag && value.instant.is_some() {
                return Err(ApiError::new(
                    "invalid_field",
                    "only a redemption is instant",
                ));
            }
            let amount = value.amount.money("amount")?;
            let (fund_id, holder_id) = (world.fund, caller);
            ProductCommand::Fund(if flag {
                FundCommand::Subscribe {
                    fund_id,
                    holder_id,
                    amount,
                }
            } else {
                FundCommand::Redeem {
                    fund_id,
                    holder_id,
                    amount,
                    instant: value.instant.unwrap_or(true),
                }
            })
        }
        14 => {
            let value: fund::NewIncome = body::parse(json)?;
            let day = time::parse_day(&value.day)
                .ok_or_else(|| ApiError::new("invalid_field", "a day, yyyy-MM-dd"))?;
            let income = Income::parse(value.income.trim())
                .map_err(|e| ApiError::new("invalid_field", e.to_string()))?;
            ProductCommand::Fund(FundCommand::PostIncome {
                fund_id: world.fund,
                day,
                income,
            })
        }
        15 => {
            let value: fund::Holidays = body::parse(json)?;
            ProductCommand::Fund(FundCommand::SetHolidays {
                days: value.days()?,
            })
        }
        16 => {
            let value: credit::NewConsent = body::parse(json)?;
            let (person_id, merchant_id) = (caller, value.merchant_id);
            ProductCommand::Credit(if flag {
                CreditCommand::Withdraw {
                    person_id,
                    merchant_id,
                }
            } else {
                CreditCommand::Grant {
                    person_id,
                    merchant_id,
                }
            })
        }
        17 => {
            let value: credit::NewCreditCheck = body::parse(json)?;
            ProductCommand::Credit(CreditCommand::Check {
                merchant_id: world.shop,
                person_id: world.person(&value.person, "person")?,
                threshold: value.threshold,
            })
        }
        18 => {
            let value: hold::NewHold = body::parse(json)?;
            let (merchant_id, person_id) = (world.shop, world.person(&value.person, "person")?);
            let out_order_no = trade::text(&value.out_order_no, "out_order_no", true)?;
            let title = trade::text(&value.title, "title", true)?;
            let (amount, threshold) = (value.amount.money("amount")?, value.threshold);
            ProductCommand::Hold(if flag {
                // The gateway's freeze: the order number doubles as the scanned code, so a
                // repeat is a used code (a title of its own length or more: approved online,
                // with no code).
                let code =
                    (title.len() < out_order_no.len()).then(|| formica_core::merchant::CodeUse {
                        code: out_order_no.clone(),
                        expires_at: u64::MAX,
                    });
                HoldCommand::Freeze(Box::new(NewFreeze {
                    merchant_id,
                    person_id,
                    code,
                    out_request_no: out_order_no.clone(),
                    out_order_no,
                    title,
                    amount,
                    threshold,
                    notify: None,
                }))
            } else {
                HoldCommand::Request {
                    merchant_id,
                    person_id,
                    out_order_no,
                    title,
                    amount,
                    threshold,
                }
            })
        }
        19 => {
            let value: hold::Repayment = body::parse(json)?;
            ProductCommand::Hold(HoldCommand::Repay {
                debt_id: trade_id,
                person_id: caller,
                amount: value.amount.money("amount")?,
            })
        }
        20 => {
            let value: hold::NewFunding = body::parse(json)?;
            ProductCommand::Hold(HoldCommand::AddFunding {
                amount: value.amount.money("amount")?,
            })
        }
        21 => {
            let value: credit_line::NewLine = body::parse(json)?;
            ProductCommand::CreditLine(CreditLineCommand::Open {
                person_id: caller,
                due_day: value.due_day,
            })
        }
        22 => {
            let value: credit_line::LineRepayment = body::parse(json)?;
            ProductCommand::CreditLine(CreditLineCommand::Repay {
                person_id: caller,
                amount: value.amount.money("amount")?,
            })
        }
        23 => {
            let value: credit_line::NewInstalments = body::parse(json)?;
            ProductCommand::CreditLine(CreditLineCommand::Instalments {
                person_id: caller,
                periods: value.periods,
            })
        }
        _ => {
            let value: people::Verification = body::parse(json)?;
            ProductCommand::Wallet(WalletCommand::SetLevel {
                user_id: caller,
                level: value.level,
            })
        }
    })
}

/// A core with two people (a buyer with money, a seller who runs a shop and manages a
/// fund), an unpaid trade, a paid escrow trade, a paid shop trade and a subscription.
struct World {
    core: Core,
    now: u64,
    buyer: Id,
    seller: Id,
    shop: Id,
    fund: Id,
    open_trade: Id,
    paid_trade: Id,
    shop_trade: Id,
}

impl World {
    fn new() -> Self {
        let mut world = World {
            core: Core::default(),
            now: START,
            buyer: Id(101),
            seller: Id(102),
            shop: Id(0),
            fund: Id(0),
            open_trade: Id(0),
            paid_trade: Id(0),
            shop_trade: Id(0),
        };
        let (buyer, seller) = (world.buyer, world.seller);
        for user_id in [buyer, seller] {
            world.seed_wallet(WalletCommand::OpenWallet {
                user_id,
                currency: Currency::CNY,
            });
        }
        world.seed_wallet(WalletCommand::SetLevel {
            user_id: buyer,
            level: Level::Verified,
        });
        let Outcome::Movement(top_up) = world.seed_wallet(WalletCommand::StartTopUp {
            user_id: buyer,
            amount: cny(1_000_000),
            card_id: CARD,
        }) else {
            panic!("a top-up is a movement")
        };
        world.seed_wallet(WalletCommand::SettleMovement {
            movement_id: top_up.id,
            succeeded: true,
            failure: None,
        });
        world.open_trade = world.seed_trade(TradeCommand::Create {
            seller_id: seller,
            buyer_id: None,
            out_trade_no: "T-open".into(),
            subject: "tea".into(),
            amount: cny(8_888),
        });
        world.paid_trade = world.seed_trade(TradeCommand::Create {
            seller_id: seller,
            buyer_id: Some(buyer),
            out_trade_no: "T-paid".into(),
            subject: "cups".into(),
            amount: cny(2_000),
        });
        world.seed_trade(TradeCommand::Pay {
            trade_id: world.paid_trade,
            buyer_id: buyer,
        });
        let Outcome::Merchant(shop) =
            world.seed_merchant(MerchantCommand::Open(Box::new(MerchantProfile {
                owner_id: seller,
                name: "Tea House".into(),
                contact: SELLER_LOGIN.into(),
                category: "food".into(),
                country: "CN".into(),
                currency: Currency::CNY,
                card_id: CARD,
            })))
        else {
            panic!("opening a shop answers the shop")
        };
        world.shop = shop.id;
        let Outcome::Trade(paid) = world.seed_merchant(MerchantCommand::Charge {
            trade: Box::new(shop_trade(shop.id, "S-paid", cny(5_000))),
            buyer_id: buyer,
            code: None,
        }) else {
            panic!("a charge answers its trade")
        };
        world.shop_trade = paid.id;
        let Outcome::Fund(fund) = world.seed_fund(FundCommand::Create {
            name: "Pocket".into(),
            currency: Currency::CNY,
            manager_id: seller,
            cutoff_second: CUTOFF_DEFAULT,
            instant_limit: cny(1_000_000),
        }) else {
            panic!("creating a fund answers the fund")
        };
        world.fund = fund.id;
        world.seed_fund(FundCommand::Subscribe {
            fund_id: fund.id,
            holder_id: buyer,
            amount: cny(10_000),
        });
        world
    }

    /// Applies a command of the world's making, which must succeed.
    fn seed(&mut self, command: ProductCommand) -> Outcome {
        self.now += SECOND;
        self.core.begin_batch();
        let reply = self.core.apply(self.now, &product(command.clone()));
        let _ = self.core.effects();
        self.core.commit_batch();
        match reply {
            Ok(Reply::Product(outcome)) => outcome,
            other => panic!("the world could not be made: {command:?} gave {other:?}"),
        }
    }

    fn seed_wallet(&mut self, command: WalletCommand) -> Outcome {
        self.seed(ProductCommand::Wallet(command))
    }

    fn seed_merchant(&mut self, command: MerchantCommand) -> Outcome {
        self.seed(ProductCommand::Merchant(command))
    }

    fn seed_fund(&mut self, command: FundCommand) -> Outcome {
        self.seed(ProductCommand::Fund(command))
    }

    fn seed_trade(&mut self, command: TradeCommand) -> Id {
        match self.seed(ProductCommand::Trade(command)) {
            Outcome::Trade(trade) => trade.id,
            other => panic!("a trade command answers a trade, not {other:?}"),
        }
    }

    /// The person a body names, as `PersonRef::resolve` finds them: exactly one of an id or
    /// a login, and a login only of someone who signed up.
    fn person(&self, person: &PersonRef, field: &str) -> Result<Id, ApiError> {
        match (&person.user_id, &person.login) {
            (Some(id), None) => Ok(*id),
            (None, Some(login)) => {
                let not_found = || ApiError::not_found("payee_not_found").field(field);
                match people::normalize_login(login)
                    .map_err(|_| not_found())?
                    .as_str()
                {
                    BUYER_LOGIN => Ok(self.buyer),
                    SELLER_LOGIN => Ok(self.seller),
                    _ => Err(not_found()),
                }
            }
            _ => Err(
                ApiError::new("invalid_field", "give exactly one of user_id or login").field(field),
            ),
        }
    }

    /// Applies a command from a request as the writer does, checking what holds of any.
    fn apply_checked(&mut self, command: ProductCommand) {
        let command = product(command);
        self.now += SECOND;
        let books = self.core.ledger().digest();
        let money_before = money(&self.core);
        let products = self.core.export_products();

        self.core.begin_batch();
        let first = self.core.apply(self.now, &command);
        let _ = self.core.effects();
        self.core.rollback_batch();
        assert_eq!(
            self.core.ledger().digest(),
            books,
            "rollback restores the books"
        );
        assert!(
            self.core.export_products() == products,
            "rollback restores the products"
        );

        self.core.begin_batch();
        let reply = self.core.apply(self.now, &command);
        assert_eq!(reply, first, "the same command applies the same way");
        let effects = self.core.effects();
        self.core.commit_batch();
        match reply {
            Ok(Reply::Product(outcome)) => {
                let json = serde_json::to_string(&outcome).expect("an outcome serializes");
                let back: Outcome = serde_json::from_str(&json).expect("an outcome reads back");
                assert_eq!(
                    serde_json::to_string(&back).expect("an outcome serializes"),
                    json
                );
            }
            Ok(other) => panic!("a product command answered {other:?}"),
            Err(CommandError::Refused(Refusal::BooksRefused { result })) => {
                panic!("the books refused what a product approved: {result} for {command:?}")
            }
            Err(CommandError::Refused(refusal)) => {
                let _ = ApiError::from(refusal);
                // The books' clock moves for a refused event, as every event gets a timestamp,
                // and a refused command may use up an id: neither is money or a business object.
                assert!(
                    money(&self.core) == money_before,
                    "a refusal changed the books"
                );
                let mut after = self.core.export_products();
                after.id_last = products.id_last;
                assert!(after == products, "a refusal changed the products");
                assert!(effects.transfers.is_empty() && effects.accounts.is_empty());
            }
            Err(other) => panic!("a product command was refused as a whole: {other:?}"),
        }
        books_balance(&self.core);
    }
}

/// Per currency debits equal credits, no account crosses its limit, pending balances match.
fn books_balance(core: &Core) {
    if let Err(violation) = core.ledger().verify() {
        panic!("the books broke: {violation:?}");
    }
}

/// The accounts and the open pending transfers: what the books hold, without their clock.
fn money(core: &Core) -> (Vec<formica_ledger::Account>, Vec<formica_ledger::Transfer>) {
    let snapshot = core.ledger().export();
    (snapshot.accounts, snapshot.pending)
}

fn product(command: ProductCommand) -> Command {
    Command::Product(ProductRequest {
        command,
        idempotency: None,
    })
}

fn cny(minor: u64) -> Money {
    Money::new(minor, Currency::CNY)
}

/// A counter trade of `shop` for `amount`.
fn shop_trade(shop: Id, out_trade_no: &str, amount: Money) -> NewTrade {
    NewTrade {
        escrow: false,
        ..NewTrade::escrow(shop, None, out_trade_no, "tea", amount)
    }
}
